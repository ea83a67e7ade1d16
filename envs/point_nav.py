"""2D point navigation (Finn et al. 2017, MAML, section 5.3; ANCHORS.md section 3).

A point starts at (0, 0) and moves by its action, a velocity clipped to [-0.1, 0.1] per axis. The
reward is the negative Euclidean distance to the task's goal after the move (the official MAML
code; the paper's text says squared). An episode lasts 100 steps and, as in the official code,
ends early once both coordinates are within 0.01 of the goal (``goal_tolerance``; 0 disables it).

Splits: ``train`` and ``test`` goals ~ U[-0.5, 0.5]^2; ``ood`` goals are uniform on the square
ring 0.5 < max(|x|, |y|) <= 1.0, outside the training square.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from metarl.env import TaskEnv, TorchTaskEnv
from metarl.registry import register_task_env
from metarl.tasks import TaskDistribution

MAX_SPEED = 0.1
HORIZON = 100


class PointNavTasks(TaskDistribution):
    """Goals of 2D navigation: ``goal [n, 2]``."""

    family = "point_nav"
    splits = ("train", "test", "ood")

    def __init__(self, goal_range: float = 0.5, ood_range: float = 1.0, **_: Any):
        if not 0 < goal_range < ood_range:
            raise ValueError(f"need 0 < goal_range < ood_range, got {goal_range}, {ood_range}")
        self.goal_range = goal_range
        self.ood_range = ood_range

    def _sample(self, n: int, split: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
        if split != "ood":
            goal = (2 * torch.rand(n, 2, generator=generator) - 1) * self.goal_range
            return {"goal": goal}
        # Uniform on the ring between two squares: the half-width r has density proportional to
        # r (the perimeter), then the point is uniform on that square's perimeter.
        lo, hi = self.goal_range, self.ood_range
        u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        r = torch.sqrt(lo**2 + u[:, 0] * (hi**2 - lo**2))
        t = u[:, 1] * 8  # position along the perimeter in units of r: 4 sides of length 2
        side = t.floor().clamp(max=7).long() // 2
        s = (t - 2 * side) - 1  # in [-1, 1) along the side
        xs = torch.stack([torch.ones_like(s), s, -torch.ones_like(s), -s], dim=1)
        ys = torch.stack([s, torch.ones_like(s), -s, -torch.ones_like(s)], dim=1)
        x = xs.gather(1, side[:, None])[:, 0] * r
        y = ys.gather(1, side[:, None])[:, 0] * r
        return {"goal": torch.stack([x, y], dim=1).float()}

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "goal": {
                "train/test": f"U[-{self.goal_range}, {self.goal_range}]^2",
                "ood": f"{self.goal_range} < max(|x|,|y|) <= {self.ood_range}",
            },
        }


def _spaces() -> tuple[gym.spaces.Box, gym.spaces.Box]:
    obs = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float64)
    act = gym.spaces.Box(-MAX_SPEED, MAX_SPEED, shape=(2,), dtype=np.float32)
    return obs, act


class PointNavBatched(TorchTaskEnv):
    """Batched point navigation: state ``pos [num_envs, 2]``."""

    distribution = PointNavTasks()
    single_observation_space, single_action_space = _spaces()
    max_episode_steps = HORIZON

    def __init__(
        self,
        num_tasks: int,
        envs_per_task: int = 1,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
        goal_tolerance: float = 0.01,
        max_episode_steps: int = HORIZON,
        **dist_kwargs: Any,
    ):
        super().__init__(num_tasks, envs_per_task, device, dtype, seed, max_episode_steps)
        self.distribution = PointNavTasks(**dist_kwargs)
        self.goal_tolerance = goal_tolerance
        self.pos = torch.zeros(self.num_envs, 2, device=self.device, dtype=dtype)

    def _reset_rows(self, mask: torch.Tensor) -> None:
        self.pos = self.where_rows(mask, torch.zeros_like(self.pos), self.pos)

    def _observe(self) -> torch.Tensor:
        return self.pos

    def _transition(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.pos = self.pos + action.clamp(-MAX_SPEED, MAX_SPEED)
        delta = self.pos - self.task["goal"]
        reward = -torch.linalg.vector_norm(delta, dim=-1)
        terminated = (delta.abs() < self.goal_tolerance).all(dim=-1)
        return reward, terminated


class PointNavEnv(TaskEnv):
    """Single-env point navigation in float64 NumPy (``task = {"goal": array([x, y])}``)."""

    distribution = PointNavTasks()
    observation_space, action_space = _spaces()

    def __init__(self, task: Any = None, goal_tolerance: float = 0.01, **dist_kwargs: Any):
        self.distribution = PointNavTasks(**dist_kwargs)
        super().__init__(task)
        self.goal_tolerance = goal_tolerance
        self.pos = np.zeros(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None):  # type: ignore[override]
        super().reset(seed=seed)
        self.pos = np.zeros(2)
        return self.pos.copy(), {}

    def step(self, action):  # type: ignore[override]
        self.pos = self.pos + np.clip(np.asarray(action, dtype=np.float64), -MAX_SPEED, MAX_SPEED)
        delta = self.pos - self.task["goal"]
        reward = -float(np.linalg.norm(delta))
        terminated = bool(np.all(np.abs(delta) < self.goal_tolerance))
        return self.pos.copy(), reward, terminated, False, {}


register_task_env(
    "metarl/PointNav-v0",
    distribution=PointNavTasks,
    entry_point="envs.point_nav:PointNavEnv",
    batched_entry_points={"torch": "envs.point_nav:PointNavBatched"},
    max_episode_steps=HORIZON,
    description="2D navigation to a goal (MAML paper); obs = position, reward = -distance",
)
