"""The batched environment contract and the base classes task families build on.

``BatchedEnv`` is the one seam every backend sits behind (torch, mujoco, warp, gymnasium):

* ``num_envs = num_tasks * envs_per_task``; row ``i`` runs task ``i // envs_per_task``.
* ``set_tasks(TaskBatch)`` fixes the tasks until it is called again (resets keep them).
* ``reset() -> obs`` and ``step(action) -> (obs, reward, terminated, truncated, info)``, all
  torch tensors on ``env.device``.
* ``terminated`` and ``truncated`` are never both true: a terminal step at the time limit is
  terminal.
* Autoreset happens inside the step that ends an episode (Gymnasium's SAME_STEP mode): the
  returned ``obs`` of a finished row is already the first observation of its next episode and the
  true last observation is ``info["final_obs"]``.

``TorchTaskEnv`` implements that contract for families written as batched tensor code. A family
supplies three pure-ish tensor functions (reset rows, observe, transition) and the base class does
time limits, autoreset and task bookkeeping without a host round trip.

``TaskEnv`` is the single-environment Gymnasium face of a family: a ``gymnasium.Env`` whose task
is settable (``env.unwrapped.task = {...}`` or ``set_task``), usable by Stable-Baselines3.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from metarl.tasks import TaskBatch, TaskDistribution

__all__ = ["BatchedEnv", "TorchTaskEnv", "TaskEnv", "StepResult"]

StepResult = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]


class BatchedEnv(ABC):
    """Many environments of a task family, stepped together as torch tensors on ``device``."""

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.SAME_STEP}
    #: The family's task distribution (class attribute set by each family).
    distribution: TaskDistribution
    single_observation_space: gym.Space
    single_action_space: gym.Space
    max_episode_steps: int

    def __init__(self, num_tasks: int, envs_per_task: int = 1, device: str | torch.device = "cpu"):
        for name, value in (("num_tasks", num_tasks), ("envs_per_task", envs_per_task)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive int")
        self.num_tasks = num_tasks
        self.envs_per_task = envs_per_task
        self.device = torch.device(device)
        self.tasks: TaskBatch | None = None

    @property
    def num_envs(self) -> int:
        return self.num_tasks * self.envs_per_task

    @property
    def is_discrete_action(self) -> bool:
        return isinstance(self.single_action_space, gym.spaces.Discrete)

    def _check_tasks(self, tasks: TaskBatch) -> None:
        if len(tasks) != self.num_tasks:
            raise ValueError(
                f"set_tasks got {len(tasks)} tasks but the env was built with "
                f"num_tasks={self.num_tasks}"
            )
        family = self.distribution.family
        if tasks.family != family:
            raise ValueError(
                f"set_tasks got tasks of family {tasks.family!r}; this env runs {family!r}"
            )

    @abstractmethod
    def set_tasks(self, tasks: TaskBatch) -> None: ...

    @abstractmethod
    def reset(self, seed: int | None = None) -> torch.Tensor: ...

    @abstractmethod
    def step(self, action: torch.Tensor) -> StepResult: ...

    def close(self) -> None:
        """Release backend resources (threads, subprocesses). Idempotent."""


class TorchTaskEnv(BatchedEnv):
    """Base class for families written as batched tensor code (backend ``torch``).

    Subclasses implement :meth:`_reset_rows`, :meth:`_observe` and :meth:`_transition`, operating
    on all ``num_envs`` rows at once. ``self.task`` holds each task parameter expanded to one row
    per environment (``[num_envs, ...]``). Randomness inside an episode (reward noise, stochastic
    transitions) comes only from ``self.generator``, seeded by ``reset(seed)``.
    """

    def __init__(
        self,
        num_tasks: int,
        envs_per_task: int = 1,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
        max_episode_steps: int | None = None,
    ):
        super().__init__(num_tasks, envs_per_task, device)
        self.dtype = dtype
        if max_episode_steps is not None:
            self.max_episode_steps = int(max_episode_steps)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.task: dict[str, torch.Tensor] = {}
        self.elapsed = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self._all_rows = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)

    # --- the three functions a family writes ------------------------------------------------
    @abstractmethod
    def _reset_rows(self, mask: torch.Tensor) -> None:
        """Start a new episode in the rows where ``mask`` ([num_envs] bool) is true.

        Must not sync with the host: blend with ``torch.where`` rather than index with ``mask``.
        """

    @abstractmethod
    def _observe(self) -> torch.Tensor:
        """The current observation of every row, ``[num_envs, *obs_shape]``."""

    @abstractmethod
    def _transition(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance every row by ``action``; return ``(reward [num_envs], terminated [num_envs])``."""

    # --- the contract -------------------------------------------------------------------------
    def set_tasks(self, tasks: TaskBatch) -> None:
        self._check_tasks(tasks)
        self.tasks = tasks
        self.task = {
            k: v.to(
                self.device, self.dtype if v.is_floating_point() else v.dtype
            ).repeat_interleave(self.envs_per_task, dim=0)
            for k, v in tasks.params.items()
        }

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if self.tasks is None:
            raise RuntimeError("call set_tasks(TaskBatch) before reset(): the env draws no tasks")
        if seed is not None:
            self.generator.manual_seed(seed)
        self.elapsed.zero_()
        self._reset_rows(self._all_rows)
        return self._observe()

    def step(self, action: torch.Tensor) -> StepResult:
        action = self._check_action(action)
        reward, terminated = self._transition(action)
        self.elapsed += 1
        truncated = (self.elapsed >= self.max_episode_steps) & ~terminated
        done = terminated | truncated
        final_obs = self._observe()
        self._reset_rows(done)
        self.elapsed.masked_fill_(done, 0)
        obs = self._observe()
        return obs, reward, terminated, truncated, {"final_obs": final_obs}

    def _check_action(self, action: torch.Tensor) -> torch.Tensor:
        shape = (self.num_envs, *(self.single_action_space.shape or ()))
        if tuple(action.shape) != shape:
            raise ValueError(f"action has shape {tuple(action.shape)}; expected {shape}")
        if self.is_discrete_action:
            return action.to(self.device, torch.long)
        return action.to(self.device, self.dtype)

    def where_rows(self, mask: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
        """``new`` in the rows where ``mask`` is true, ``old`` elsewhere (mask broadcast on row axis)."""
        return torch.where(mask.view(-1, *([1] * (old.dim() - 1))), new, old)


class TaskEnv(gym.Env):
    """A single Gymnasium environment of a task family with a settable task.

    ``task`` is a mapping from parameter name to a NumPy array without the task axis (e.g.
    ``{"goal": array([0.3, -0.1])}``). It can be passed to the constructor
    (``gymnasium.make(id, task=...)``), assigned (``env.unwrapped.task = ...``) or set through
    ``env.unwrapped.set_task(...)``, which vector envs can reach with ``call("set_task", ...)``.
    Without one, the env runs the first ``train`` task of seed 0, so ``make(id)`` always works.
    """

    distribution: TaskDistribution

    def __init__(self, task: Mapping[str, Any] | TaskBatch | None = None):
        super().__init__()
        if task is None:
            task = self.distribution.sample(1, "train", torch.Generator().manual_seed(0))
        self.task = task  # type: ignore[assignment]

    @property
    def task(self) -> dict[str, np.ndarray]:
        return self._task

    @task.setter
    def task(self, task: Mapping[str, Any] | TaskBatch) -> None:
        if isinstance(task, TaskBatch):
            if len(task) != 1:
                raise ValueError(f"a single env takes a TaskBatch of 1 task, got {len(task)}")
            task = {k: v[0] for k, v in task.params.items()}
        if not hasattr(self, "_param_names"):
            probe = self.distribution.sample(1, "train", torch.Generator().manual_seed(0))
            self._param_names = set(probe.params)
        expected = self._param_names
        if set(task) != expected:
            raise ValueError(
                f"task has parameters {sorted(task)}; {type(self).__name__} needs "
                f"{sorted(expected)}"
            )
        self._task = {
            k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)).astype(
                np.float64 if np.asarray(v).dtype.kind == "f" else np.int64
            )
            for k, v in task.items()
        }
        self._on_task_change()

    def set_task(self, task: Mapping[str, Any] | TaskBatch) -> None:
        self.task = task  # type: ignore[assignment]

    def _on_task_change(self) -> None:
        """Hook for families that precompute something from the task."""
