"""Backend ``gymnasium``: any registered single env with a settable task, batched by Gymnasium.

This is the path for user families and for environments that exist only as single Gymnasium envs
(Meta-World). Every environment is built with ``gymnasium.make(env_id)``; tasks are pushed with
``set_attr("task", ...)``, which Gymnasium routes to the innermost env that has the attribute (a
plain ``setattr`` on a wrapper would not reach it). Autoreset runs in SAME_STEP mode, as the
contract asks, so the last observation of an episode arrives in ``info["final_obs"]``.

Each step crosses the host (NumPy <-> torch): use a batched backend where speed matters.
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from metarl.env import BatchedEnv, StepResult
from metarl.tasks import TaskBatch, TaskDistribution

__all__ = ["GymnasiumBatchedEnv"]


class GymnasiumBatchedEnv(BatchedEnv):
    """``num_tasks * envs_per_task`` Gymnasium envs in a sync or async vector env."""

    def __init__(
        self,
        env_id: str,
        num_tasks: int,
        envs_per_task: int = 1,
        device: str | torch.device = "cpu",
        *,
        distribution: TaskDistribution,
        vectorization: Literal["sync", "async"] = "sync",
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        **env_kwargs: Any,
    ):
        super().__init__(num_tasks, envs_per_task, device)
        self.distribution = distribution
        self.dtype = dtype
        self._seed = seed
        fns = [lambda: gym.make(env_id, **env_kwargs) for _ in range(self.num_envs)]
        cls = AsyncVectorEnv if vectorization == "async" else SyncVectorEnv
        self.vec = cls(fns, autoreset_mode=AutoresetMode.SAME_STEP)
        self.single_observation_space = self.vec.single_observation_space
        self.single_action_space = self.vec.single_action_space
        spec = gym.spec(env_id)
        if spec.max_episode_steps is None:
            raise ValueError(f"{env_id} has no max_episode_steps; register it with one")
        self.max_episode_steps = spec.max_episode_steps
        self._seeded = False

    def set_tasks(self, tasks: TaskBatch) -> None:
        self._check_tasks(tasks)
        self.tasks = tasks
        rows = torch.arange(self.num_envs) // self.envs_per_task
        self.vec.set_attr(
            "task", [{k: v[int(t)].numpy() for k, v in tasks.params.items()} for t in rows]
        )

    def _to_torch(self, x: np.ndarray, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), device=self.device, dtype=dtype)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if self.tasks is None:
            raise RuntimeError("call set_tasks(TaskBatch) before reset(): the env draws no tasks")
        if seed is None and not self._seeded:
            seed = self._seed
        self._seeded = True
        obs, _ = self.vec.reset(seed=seed)
        return self._to_torch(obs, self.dtype)

    def step(self, action: torch.Tensor) -> StepResult:
        act = action.detach().cpu().numpy()
        obs, reward, terminated, truncated, info = self.vec.step(act)
        # Gymnasium's TimeLimit flags truncation even on a terminal last step; the contract says
        # terminal wins (nothing is bootstrapped past a true terminal state).
        truncated = np.logical_and(truncated, np.logical_not(terminated))
        done = np.logical_or(terminated, truncated)
        final = np.array(obs, copy=True)
        if done.any() and "final_obs" in info:
            for i in np.flatnonzero(done):
                final[i] = info["final_obs"][i]
        return (
            self._to_torch(obs, self.dtype),
            self._to_torch(reward, self.dtype),
            self._to_torch(terminated, torch.bool),
            self._to_torch(truncated, torch.bool),
            {"final_obs": self._to_torch(final, self.dtype)},
        )

    def close(self) -> None:
        self.vec.close()
