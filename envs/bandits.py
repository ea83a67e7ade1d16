"""Bernoulli multi-armed bandits (Duan et al. 2016, RL², section 3.1 and Table 1; ANCHORS.md 1).

A task is a k-armed bandit whose arm ``i`` pays 1 with probability ``p_i`` and 0 otherwise, with
``p_i ~ U[0, 1]`` drawn independently per task. An episode is a single pull
(``max_episode_steps = 1``, the pull terminates it), and an RL² trial is ``n`` such episodes on the
same task, so the score of a trial is the total reward of ``n`` pulls.

The observation is a constant dummy ``[0.]`` of shape ``(1,)``: a bandit has no state. An RL² agent
learns about the arms only from the previous action and reward, which the recurrent policy puts
in its own input (DESIGN.md, Policy), identically on every backend.

Splits: ``train`` and ``test`` are independent draws from ``U[0, 1]^k``. There is no ``ood`` split:
the prior already covers every Bernoulli parameter, so no arm probability lies outside the
training range; a shift in the *distribution* of arms (e.g. all arms near 0.5) would be a different
family, not a split of this one.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from metarl.env import StepResult, TaskEnv, TorchTaskEnv
from metarl.registry import register_task_env
from metarl.tasks import TaskBatch, TaskDistribution

__all__ = ["BanditTasks", "BanditBatched", "BanditEnv", "DEFAULT_NUM_ARMS"]

DEFAULT_NUM_ARMS = 5


def _check_num_arms(num_arms: Any) -> int:
    if isinstance(num_arms, bool) or not isinstance(num_arms, int | np.integer) or num_arms < 2:
        raise ValueError(f"num_arms={num_arms!r} must be an int >= 2 (number of bandit arms)")
    return int(num_arms)


class BanditTasks(TaskDistribution):
    """k-armed Bernoulli bandits: ``probs [n, k]`` with every ``p_i ~ U[0, 1]`` (RL², Table 1)."""

    family = "bandit"
    splits = ("train", "test")

    def __init__(self, num_arms: int = DEFAULT_NUM_ARMS, **_: Any):
        self.num_arms = _check_num_arms(num_arms)

    def _sample(self, n: int, split: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"probs": torch.rand(n, self.num_arms, generator=generator)}  # [task, arm]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "num_arms": self.num_arms, "probs": "U[0, 1] per arm"}


def _spaces(num_arms: int) -> tuple[gym.spaces.Box, gym.spaces.Discrete]:
    obs = gym.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
    return obs, gym.spaces.Discrete(num_arms)


def _check_probs(probs_shape: tuple[int, ...], num_arms: int, where: str) -> None:
    if probs_shape[-1] != num_arms:
        raise ValueError(
            f"{where}: task parameter 'probs' has {probs_shape[-1]} arms but the env was built with "
            f"num_arms={num_arms}; build it with num_arms={probs_shape[-1]} or sample the tasks "
            f"from BanditTasks(num_arms={num_arms})"
        )


class BanditBatched(TorchTaskEnv):
    """Batched Bernoulli bandits: one pull per episode, rewards drawn from ``self.generator``.

    ``info["expected_reward"]`` (``[num_envs]``) is the probability of the pulled arm, the
    noise-free reward: it lets parity tests and regret computations avoid Bernoulli noise.
    """

    distribution = BanditTasks()
    single_observation_space, single_action_space = _spaces(DEFAULT_NUM_ARMS)
    max_episode_steps = 1

    def __init__(
        self,
        num_tasks: int,
        envs_per_task: int = 1,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
        num_arms: int = DEFAULT_NUM_ARMS,
        max_episode_steps: int = 1,
        **dist_kwargs: Any,
    ):
        super().__init__(num_tasks, envs_per_task, device, dtype, seed, max_episode_steps)
        self.distribution = BanditTasks(num_arms, **dist_kwargs)
        self.num_arms = self.distribution.num_arms
        self.single_observation_space, self.single_action_space = _spaces(self.num_arms)
        self._obs = torch.zeros(self.num_envs, 1, device=self.device, dtype=dtype)
        self._expected = torch.zeros(self.num_envs, device=self.device, dtype=dtype)

    def set_tasks(self, tasks: TaskBatch) -> None:
        _check_probs(tuple(tasks["probs"].shape), self.num_arms, "BanditBatched.set_tasks")
        super().set_tasks(tasks)

    def _reset_rows(self, mask: torch.Tensor) -> None:
        pass  # a bandit has no state to reset

    def _observe(self) -> torch.Tensor:
        return self._obs  # [env, 1], constant

    def _transition(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.task["probs"].gather(1, action[:, None])[:, 0]  # [env]
        u = torch.rand(
            self.num_envs, generator=self.generator, device=self.device, dtype=self.dtype
        )
        self._expected = p
        reward = (u < p).to(self.dtype)  # Bernoulli(p): u in [0, 1), so p=0 never pays, p=1 always
        # A pull ends the episode: there is no next state, so it terminates (not a time limit).
        return reward, torch.ones_like(reward, dtype=torch.bool)

    def step(self, action: torch.Tensor) -> StepResult:
        obs, reward, terminated, truncated, info = super().step(action)
        info["expected_reward"] = self._expected
        return obs, reward, terminated, truncated, info


class BanditEnv(TaskEnv):
    """Single-env Bernoulli bandit in NumPy (``task = {"probs": array of k probabilities}``).

    Each ``step`` is one pull and terminates the episode; the reward is drawn from
    ``self.np_random``, so ``reset(seed=...)`` fixes the reward sequence.
    """

    distribution = BanditTasks()
    observation_space, action_space = _spaces(DEFAULT_NUM_ARMS)

    def __init__(self, task: Any = None, num_arms: int = DEFAULT_NUM_ARMS, **dist_kwargs: Any):
        self.distribution = BanditTasks(num_arms, **dist_kwargs)
        self.num_arms = self.distribution.num_arms
        self.observation_space, self.action_space = _spaces(self.num_arms)
        super().__init__(task)

    def _on_task_change(self) -> None:
        _check_probs(self.task["probs"].shape, self.num_arms, "BanditEnv.task")

    def reset(self, *, seed: int | None = None, options: dict | None = None):  # type: ignore[override]
        super().reset(seed=seed)
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action):  # type: ignore[override]
        p = float(self.task["probs"][int(action)])
        reward = float(self.np_random.random() < p)
        return np.zeros(1, dtype=np.float32), reward, True, False, {"expected_reward": p}


register_task_env(
    "metarl/Bandit-v0",
    distribution=BanditTasks,
    entry_point="envs.bandits:BanditEnv",
    batched_entry_points={"torch": "envs.bandits:BanditBatched"},
    max_episode_steps=1,
    kwargs={"num_arms": DEFAULT_NUM_ARMS},
    description="k-armed Bernoulli bandit, p_i ~ U[0,1] (RL² Table 1); one pull per episode",
)
