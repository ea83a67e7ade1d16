"""Random tabular MDPs (Duan et al. 2016, RL², section 3.2 and Table 2; ANCHORS.md 2).

A task is a finite MDP with ``S`` states and ``A`` actions (10 and 5 in the paper):

* mean rewards ``reward_mean[s, a] ~ N(1, 1)``; the reward of a step is
  ``N(reward_mean[s, a], reward_std^2)`` with ``reward_std = 1`` (the paper's unit variance);
* transitions ``transition[s, a, :] ~ Dirichlet(1, ..., 1)``, the flat Dirichlet.

Every episode starts in state 0 and lasts ``horizon = 10`` steps (a time limit: the state does not
say how many steps are left, so the end of an episode is a truncation, not a termination). The
observation is the one-hot state. An RL² trial is ``n`` episodes of the same MDP.

``reward_std`` is an env option, not a task parameter: ``reward_std=0`` makes rewards deterministic,
which parity tests between the single and the batched env use.

Splits: ``train`` and ``test`` are independent draws from the same prior. There is no ``ood``
split: the paper defines no out-of-range MDPs, and a Gaussian prior on rewards has no range to
step outside of.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from metarl.env import TaskEnv, TorchTaskEnv
from metarl.registry import register_task_env
from metarl.tasks import TaskBatch, TaskDistribution

__all__ = ["TabularMDPTasks", "TabularMDPBatched", "TabularMDPEnv", "sample_flat_dirichlet"]

NUM_STATES = 10
NUM_ACTIONS = 5
HORIZON = 10


def sample_flat_dirichlet(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Draws of Dirichlet(1, ..., 1) over the last axis of ``shape`` (float32, rows sum to 1).

    A flat Dirichlet is a vector of i.i.d. Exponential(1) draws, normalized. ``torch.distributions``
    takes no generator, so the exponentials are ``-log(1 - U)`` of ``torch.rand`` draws (``1 - U``
    lies in (0, 1], so every draw is finite); float64 keeps the normalized rows exact to float32.
    """
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    e = -torch.log1p(-u)
    return (e / e.sum(-1, keepdim=True)).float()


def _check_sizes(num_states: Any, num_actions: Any) -> tuple[int, int]:
    for name, value in (("num_states", num_states), ("num_actions", num_actions)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive int")
    return int(num_states), int(num_actions)


class TabularMDPTasks(TaskDistribution):
    """Random MDPs: ``reward_mean [n, S, A] ~ N(1, 1)``, ``transition [n, S, A, S] ~ Dir(1)``."""

    family = "tabular_mdp"
    splits = ("train", "test")

    def __init__(
        self,
        num_states: int = NUM_STATES,
        num_actions: int = NUM_ACTIONS,
        reward_prior_mean: float = 1.0,
        reward_prior_std: float = 1.0,
        **_: Any,
    ):
        self.num_states, self.num_actions = _check_sizes(num_states, num_actions)
        self.reward_prior_mean = float(reward_prior_mean)
        self.reward_prior_std = float(reward_prior_std)

    def _sample(self, n: int, split: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
        s, a = self.num_states, self.num_actions
        mean = self.reward_prior_mean + self.reward_prior_std * torch.randn(
            n, s, a, generator=generator
        )  # [task, state, action]
        transition = sample_flat_dirichlet((n, s, a, s), generator)  # [task, state, action, next]
        return {"reward_mean": mean, "transition": transition}

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "num_states": self.num_states,
            "num_actions": self.num_actions,
            "reward_mean": f"N({self.reward_prior_mean}, {self.reward_prior_std}^2)",
            "transition": "Dirichlet(1, ..., 1) per (state, action)",
        }


def _spaces(num_states: int, num_actions: int) -> tuple[gym.spaces.Box, gym.spaces.Discrete]:
    obs = gym.spaces.Box(0.0, 1.0, shape=(num_states,), dtype=np.float32)
    return obs, gym.spaces.Discrete(num_actions)


def _check_task_shapes(shapes: dict[str, tuple[int, ...]], s: int, a: int, where: str) -> None:
    expected = {"reward_mean": (s, a), "transition": (s, a, s)}
    for name, shape in expected.items():
        if shapes[name][-len(shape) :] != shape:
            raise ValueError(
                f"{where}: task parameter {name!r} has shape {shapes[name]}, expected "
                f"(..., {', '.join(map(str, shape))}) for num_states={s}, "
                f"num_actions={a}"
            )


class TabularMDPBatched(TorchTaskEnv):
    """Batched random MDPs: state ``state [num_envs]`` (long), one-hot observations."""

    distribution = TabularMDPTasks()
    single_observation_space, single_action_space = _spaces(NUM_STATES, NUM_ACTIONS)
    max_episode_steps = HORIZON

    def __init__(
        self,
        num_tasks: int,
        envs_per_task: int = 1,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
        num_states: int = NUM_STATES,
        num_actions: int = NUM_ACTIONS,
        reward_std: float = 1.0,
        max_episode_steps: int = HORIZON,
        **dist_kwargs: Any,
    ):
        super().__init__(num_tasks, envs_per_task, device, dtype, seed, max_episode_steps)
        self.distribution = TabularMDPTasks(num_states, num_actions, **dist_kwargs)
        self.num_states = self.distribution.num_states
        self.num_actions = self.distribution.num_actions
        if reward_std < 0:
            raise ValueError(f"reward_std={reward_std!r} must be >= 0")
        self.reward_std = float(reward_std)
        self.single_observation_space, self.single_action_space = _spaces(
            self.num_states, self.num_actions
        )
        self.state = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self._rows = torch.arange(self.num_envs, device=self.device)

    def set_tasks(self, tasks: TaskBatch) -> None:
        _check_task_shapes(
            {k: tuple(v.shape) for k, v in tasks.params.items()},
            self.num_states,
            self.num_actions,
            "TabularMDPBatched.set_tasks",
        )
        super().set_tasks(tasks)

    def _reset_rows(self, mask: torch.Tensor) -> None:
        self.state = torch.where(mask, torch.zeros_like(self.state), self.state)

    def _observe(self) -> torch.Tensor:
        return torch.nn.functional.one_hot(self.state, self.num_states).to(self.dtype)  # [env, S]

    def _transition(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.task["reward_mean"][self._rows, self.state, action]  # [env]
        noise = torch.randn(
            self.num_envs, generator=self.generator, device=self.device, dtype=self.dtype
        )
        reward = mean + self.reward_std * noise
        p = self.task["transition"][self._rows, self.state, action]  # [env, next]
        # Inverse-CDF draw: the next state is the number of CDF entries <= u (NumPy's
        # searchsorted(side="right")), clamped against rounding when the CDF ends just below 1.
        u = torch.rand(
            self.num_envs, 1, generator=self.generator, device=self.device, dtype=p.dtype
        )
        nxt = (p.cumsum(-1) <= u).sum(-1).clamp(max=self.num_states - 1)  # [env]
        self.state = nxt
        return reward, torch.zeros_like(nxt, dtype=torch.bool)


class TabularMDPEnv(TaskEnv):
    """Single-env random MDP in NumPy (``task = {"reward_mean": [S, A], "transition": [S, A, S]}``).

    Episodes start in state 0; the horizon is the Gymnasium time limit of the registration.
    """

    distribution = TabularMDPTasks()
    observation_space, action_space = _spaces(NUM_STATES, NUM_ACTIONS)

    def __init__(
        self,
        task: Any = None,
        num_states: int = NUM_STATES,
        num_actions: int = NUM_ACTIONS,
        reward_std: float = 1.0,
        **dist_kwargs: Any,
    ):
        self.distribution = TabularMDPTasks(num_states, num_actions, **dist_kwargs)
        self.num_states = self.distribution.num_states
        self.num_actions = self.distribution.num_actions
        if reward_std < 0:
            raise ValueError(f"reward_std={reward_std!r} must be >= 0")
        self.reward_std = float(reward_std)
        self.observation_space, self.action_space = _spaces(self.num_states, self.num_actions)
        self.state = 0
        super().__init__(task)

    def _on_task_change(self) -> None:
        _check_task_shapes(
            {k: v.shape for k, v in self.task.items()},
            self.num_states,
            self.num_actions,
            "TabularMDPEnv.task",
        )
        self._cdf = np.cumsum(self.task["transition"], axis=-1)  # [S, A, next]

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.num_states, dtype=np.float32)
        obs[self.state] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):  # type: ignore[override]
        super().reset(seed=seed)
        self.state = 0
        return self._obs(), {}

    def step(self, action):  # type: ignore[override]
        a = int(action)
        reward = float(
            self.task["reward_mean"][self.state, a]
            + self.reward_std * self.np_random.standard_normal()
        )
        u = self.np_random.random()
        nxt = int(np.searchsorted(self._cdf[self.state, a], u, side="right"))
        self.state = min(nxt, self.num_states - 1)
        return self._obs(), reward, False, False, {}


register_task_env(
    "metarl/TabularMDP-v0",
    distribution=TabularMDPTasks,
    entry_point="envs.tabular_mdp:TabularMDPEnv",
    batched_entry_points={"torch": "envs.tabular_mdp:TabularMDPBatched"},
    max_episode_steps=HORIZON,
    kwargs={"num_states": NUM_STATES, "num_actions": NUM_ACTIONS, "reward_std": 1.0},
    description="random MDP, 10 states x 5 actions, N(1,1) mean rewards, Dirichlet(1) transitions "
    "(RL² Table 2); 10-step episodes from state 0",
)
