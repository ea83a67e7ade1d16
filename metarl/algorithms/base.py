"""What every learner shares: construction from a run config, checkpointable state, evaluation.

An algorithm is a class with a ``Config`` dataclass of its hyperparameters and one readable
``train_step`` (sample tasks -> rollouts -> inner adaptation -> outer update -> metrics). The
trainer (``metarl.training``) owns the loop, logging, evaluation and checkpoints; the algorithm
only says what it learns and how it adapts (:meth:`adaptation_curve`, the evaluator's protocol).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from metarl.env import BatchedEnv
from metarl.evaluation import AdaptationCurve
from metarl.registry import make_batched_env, make_distribution
from metarl.tasks import TaskBatch, TaskDistribution

__all__ = ["Algorithm"]


class Algorithm(ABC):
    """Base class of the learners.

    Subclasses define ``Config`` (a dataclass), build their networks and optimizers in
    ``__init__`` and record them with :meth:`track`, so checkpoints cover weights, optimizer
    state and every random generator (task sampler included) without more code.

    Attributes:
        env: the training env (built by :meth:`make_env`).
        distribution: the family's task distribution.
        task_generator: the only source of training tasks (``train`` split).
        generator: host-side draws of the learner (minibatch order).
        action_generator: action sampling, on the learner's device.
    """

    Config: ClassVar[type]
    #: How many environments per task the evaluator builds for this learner's adaptation.
    eval_envs_per_task: int = 1

    def __init__(
        self,
        env_id: str,
        config: Any,
        *,
        seed: int = 1,
        device: str | torch.device = "cpu",
        backend: str | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
    ):
        self.env_id = env_id
        self.config = config
        self.seed = seed
        self.device = torch.device(device)
        self.backend = backend
        self.env_kwargs = dict(env_kwargs or {})
        self.distribution: TaskDistribution = make_distribution(env_id, **self.env_kwargs)
        self.task_generator = torch.Generator().manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed + 1)
        self.action_generator = torch.Generator(device=self.device).manual_seed(seed + 2)
        # nn.init takes no generator: seed the global RNG for weight initialisation only; no draw
        # of the run reads it afterwards.
        torch.manual_seed(seed)
        self.iteration = 0
        self.env_steps = 0
        self._tracked: dict[str, Any] = {}

    # --- what each learner writes ----------------------------------------------------------
    @abstractmethod
    def train_step(self) -> dict[str, float]:
        """One meta-iteration. Returns metrics; must include ``env_steps`` (consumed this step)."""

    @abstractmethod
    def adaptation_curve(
        self, env: BatchedEnv, tasks: TaskBatch, generator: torch.Generator
    ) -> AdaptationCurve:
        """Adapt to ``tasks`` in ``env`` and report the curve (see :class:`metarl.evaluation.Adaptive`)."""

    # --- shared machinery ------------------------------------------------------------------
    def make_env(self, num_tasks: int, envs_per_task: int = 1, **kwargs: Any) -> BatchedEnv:
        return make_batched_env(
            self.env_id,
            num_tasks,
            envs_per_task,
            self.device,
            self.backend,
            **{**self.env_kwargs, **kwargs},
        )  # type: ignore[arg-type]

    def sample_tasks(self, n: int) -> TaskBatch:
        return self.distribution.sample(n, "train", self.task_generator)

    def track(
        self, **objects: nn.Module | torch.optim.Optimizer | torch.Generator | BatchedEnv
    ) -> None:
        """Record objects whose state a checkpoint must hold (modules, optimizers, generators,
        envs with a ``generator``)."""
        self._tracked.update(objects)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "task_generator": self.task_generator.get_state(),
            "generator": self.generator.get_state(),
            "action_generator": self.action_generator.get_state(),
        }
        for name, obj in self._tracked.items():
            if isinstance(obj, torch.Generator):
                state[name] = obj.get_state()
            elif isinstance(obj, BatchedEnv):
                gen = getattr(obj, "generator", None)
                if isinstance(gen, torch.Generator):
                    state[name] = gen.get_state()
            else:
                state[name] = obj.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.iteration = int(state["iteration"])
        self.env_steps = int(state["env_steps"])
        self.task_generator.set_state(state["task_generator"])
        self.generator.set_state(state["generator"])
        self.action_generator.set_state(state["action_generator"])
        for name, obj in self._tracked.items():
            if name not in state:
                raise KeyError(f"checkpoint has no entry {name!r}; it holds {sorted(state)}")
            if isinstance(obj, torch.Generator):
                obj.set_state(state[name])
            elif isinstance(obj, BatchedEnv):
                gen = getattr(obj, "generator", None)
                if isinstance(gen, torch.Generator):
                    gen.set_state(state[name])
            else:
                obj.load_state_dict(state[name])
