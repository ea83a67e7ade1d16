"""The oracle of the MAML paper's comparisons: a policy that observes the task.

Finn et al. 2017 (section 5.3) bound what adaptation can reach with "an oracle policy that
receives the goal position as input". :class:`TaskObservationEnv` gives any task family that
view, without family-specific code: it appends the task's parameters (every tensor of the
:class:`~metarl.tasks.TaskBatch`, flattened, in name order) to each observation. The oracle is
then ordinary multi-task PPO on the wrapped env; its curve is the return without adaptation
(``eval_num_steps = 0``) unless asked to fine-tune too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from metarl.algorithms.finetune import PretrainedFineTune, PretrainedFineTuneConfig
from metarl.env import BatchedEnv, StepResult
from metarl.evaluation import AdaptationCurve
from metarl.tasks import TaskBatch

__all__ = ["Oracle", "OracleConfig", "TaskObservationEnv", "task_features"]


def task_features(tasks: TaskBatch) -> torch.Tensor:
    """``[task, F]``: every task parameter flattened and concatenated, in name order."""
    return torch.cat(
        [tasks.params[k].reshape(len(tasks), -1).to(torch.float32) for k in sorted(tasks.params)],
        dim=1,
    )


class TaskObservationEnv(BatchedEnv):
    """A batched env whose observations end with the task's parameters (``[obs, features]``)."""

    def __init__(self, env: BatchedEnv):
        super().__init__(env.num_tasks, env.envs_per_task, env.device)
        self.env = env
        self.distribution = env.distribution
        self.max_episode_steps = env.max_episode_steps
        self.single_action_space = env.single_action_space
        # The feature size from a fixed draw: no global RNG, and the same for every task.
        probe = env.distribution.sample(1, "train", torch.Generator().manual_seed(0))
        size = task_features(probe).shape[1]
        inner = env.single_observation_space
        if not isinstance(inner, gym.spaces.Box):
            raise ValueError(f"TaskObservationEnv needs a Box observation space, got {inner}")
        self.single_observation_space = gym.spaces.Box(
            np.concatenate([inner.low.ravel(), np.full(size, -np.inf)]),
            np.concatenate([inner.high.ravel(), np.full(size, np.inf)]),
            dtype=np.float64,
        )
        self.generator = getattr(env, "generator", None)  # checkpointed through track()
        self._features: torch.Tensor | None = None

    def set_tasks(self, tasks: TaskBatch) -> None:
        self.env.set_tasks(tasks)
        self.tasks = tasks
        feats = task_features(tasks).to(self.device)
        self._features = feats.repeat_interleave(self.envs_per_task, dim=0)  # [num_envs, F]

    def _with_task(self, obs: torch.Tensor) -> torch.Tensor:
        assert self._features is not None, "call set_tasks before reset/step"
        return torch.cat([obs.reshape(obs.shape[0], -1), self._features.to(obs.dtype)], dim=1)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        return self._with_task(self.env.reset(seed))

    def step(self, action: torch.Tensor) -> StepResult:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        if "final_obs" in info:
            info["final_obs"] = self._with_task(info["final_obs"])
        return self._with_task(obs), reward, terminated, truncated, info

    def close(self) -> None:
        self.env.close()


@dataclass
class OracleConfig(PretrainedFineTuneConfig):
    """Multi-task PPO on task-observing envs; no adaptation at evaluation by default."""

    eval_num_steps: int = 0


class Oracle(PretrainedFineTune):
    """Multi-task PPO whose policy sees the task parameters (an upper bound for adaptation)."""

    Config = OracleConfig

    def make_env(self, num_tasks: int, envs_per_task: int = 1, **kwargs: Any) -> BatchedEnv:
        return TaskObservationEnv(super().make_env(num_tasks, envs_per_task, **kwargs))

    def adaptation_curve(
        self, env: BatchedEnv, tasks: TaskBatch, generator: torch.Generator
    ) -> AdaptationCurve:
        return super().adaptation_curve(TaskObservationEnv(env), tasks, generator)
