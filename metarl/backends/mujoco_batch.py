"""The ``mujoco`` backend: MuJoCo task families stepped by ``mujoco.batch`` in C++ threads.

A :class:`MujocoFamily` says what a MuJoCo task family is: its MJCF model, frame skip, reset
noise, and its observation, reward and termination written once against the operations NumPy and
torch share (``x[..., i]``, ``.sum(-1)``, ``.clip``, ``xp.concat``, ``xp.isfinite``; ``xp`` is the
module). Two faces run it:

* :class:`MujocoBatchedEnv` (this backend) evaluates them in torch on every row at once, over
  zero-copy views of one ``mujoco.batch.Batch``: the batch keeps each simulation's state in a
  row of one float64 array and steps all of them on ``nthread`` C++ threads with the GIL
  released. Per-task dynamics (masses, friction, ...) are per-simulation model fields written by
  ``Batch.expand`` and made consistent by ``Batch.set_const``.
* :class:`MujocoTaskEnv` evaluates them in NumPy on one plain ``MjModel``/``MjData``: the
  Gymnasium env for Stable-Baselines3 and the reference the parity tests compare against.

Because the formulas are shared and ``mujoco.batch`` is bit-identical to ``mj_step`` on one
``MjData``, the two faces agree to rounding (the tests check 1e-9 in float64 over 300 steps).
"""

from __future__ import annotations

import copy
import functools
import inspect
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import ModuleType
from typing import Any, ClassVar, Literal

import gymnasium as gym
import mujoco
import mujoco.batch
import numpy as np
import torch

from metarl.dynamics import (
    PARAMETER_GROUPS,
    apply_to_model,
    base_values,
    dynamics_params,
    scaled_values,
)
from metarl.env import BatchedEnv, StepResult, TaskEnv
from metarl.tasks import TaskBatch, TaskDistribution

__all__ = ["MujocoBatchedEnv", "MujocoFamily", "MujocoTaskEnv", "available_threads"]

Array = Any  # np.ndarray or torch.Tensor: family functions run on both
State = Mapping[str, Array]  # "qpos" [..., nq], "qvel" [..., nv], plus the family's derived_fields


def available_threads() -> int:
    """The number of CPU cores this process may run on (affinity, cgroups' cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


class MujocoFamily(ABC):
    """A MuJoCo task family: model, timing, reset distribution, observation, reward, termination.

    Subclasses set the class attributes and implement :meth:`observe` and :meth:`reward` (and
    :meth:`terminated` when episodes can end early), each a function of ``xp`` (``numpy`` or
    ``torch``), the state ``s`` with any leading batch axes, and the task (parameters broadcast
    against those axes). ``__init__`` takes the family's options and sets ``self.distribution``.
    """

    #: path of the MJCF file
    xml: ClassVar[str]
    #: physics substeps per env step
    frame_skip: ClassVar[int]
    #: episode horizon
    max_episode_steps: ClassVar[int] = 200
    #: MjData fields beyond qpos and qvel the family reads; "cfrc_ext" adds a sensor (see build_model)
    derived_fields: ClassVar[tuple[str, ...]] = ()
    #: reset: qpos + U(-scale, scale); qvel + U(-scale, scale) or scale * N(0, 1)
    qvel_noise: ClassVar[Literal["uniform", "normal"]] = "uniform"

    distribution: TaskDistribution
    reset_noise_scale: float

    @classmethod
    def task_distribution(cls, **options: Any) -> TaskDistribution:
        """The family's TaskDistribution for ``options`` (keys it does not take are ignored, as
        they belong to the env constructors: ``nthread``, ``seed``...)."""
        accepted = inspect.signature(cls.__init__).parameters
        return cls(**{k: v for k, v in options.items() if k in accepted}).distribution

    def build_model(self) -> mujoco.MjModel:
        """A fresh copy of the compiled model (compiled once per process and family setup).

        MuJoCo computes ``cfrc_ext`` only when a sensor needs it; Gymnasium calls
        ``mj_rnePostConstraint`` after ``mj_step`` instead, which a batch cannot. Families that
        read it get an acceleration sensor on the root body, which makes every forward pass
        compute it and changes nothing in the dynamics.
        """
        return copy.copy(_compile(self.xml, "cfrc_ext" in self.derived_fields))

    def dynamics_groups(self) -> list[str]:
        """The parameter groups the family's tasks scale (``log_scale/<group>`` parameters)."""
        sample = self.distribution.sample(1, "train", torch.Generator().manual_seed(0))
        return list(dynamics_params(sample.params))

    def position(self, xp: ModuleType, s: State) -> Array:
        """What velocity is measured on, ``[..., k]``; by default the root's x (``qpos[0]``)."""
        return s["qpos"][..., :1]

    @abstractmethod
    def observe(self, xp: ModuleType, s: State, task: Mapping[str, Array]) -> Array:
        """The observation ``[..., obs_dim]``."""

    @abstractmethod
    def reward(
        self,
        xp: ModuleType,
        s: State,
        velocity: Array,
        action: Array,
        task: Mapping[str, Array],
    ) -> Array:
        """The reward ``[...]`` after a step; ``velocity`` is ``d position / dt``, ``[..., k]``."""

    def terminated(self, xp: ModuleType, s: State, task: Mapping[str, Array]) -> Array | None:
        """Whether the episode ends ``[...]`` (bool); None: never."""
        return None


@functools.cache
def _compile(xml: str, contact_forces: bool) -> mujoco.MjModel:
    spec = mujoco.MjSpec.from_file(xml)
    if contact_forces:
        spec.add_sensor(
            name="metarl_cfrc_ext_trigger",
            type=mujoco.mjtSensor.mjSENS_FRAMELINACC,
            objtype=mujoco.mjtObj.mjOBJ_BODY,
            objname=spec.worldbody.first_body().name,
        )
    with warnings.catch_warnings():
        # Gymnasium's half_cheetah.xml uses `settotalmass`, which MuJoCo 4 deprecates;
        # the compiled model is the one Gymnasium's own envs run, so the warning is only noise.
        warnings.filterwarnings("ignore", message="compiler attribute 'settotalmass'")
        return spec.compile()


def _reset_noise(
    family: MujocoFamily, n: int, nq: int, nv: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reset perturbations of ``n`` rows, drawn from ``generator`` (float64, CPU)."""
    scale = family.reset_noise_scale
    dq = (2 * torch.rand(n, nq, generator=generator, dtype=torch.float64) - 1) * scale
    if family.qvel_noise == "normal":
        dv = scale * torch.randn(n, nv, generator=generator, dtype=torch.float64)
    else:
        dv = (2 * torch.rand(n, nv, generator=generator, dtype=torch.float64) - 1) * scale
    return dq, dv


def _spaces(
    model: mujoco.MjModel, obs_dim: int, dtype: Any
) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    obs = gym.spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=dtype)
    low, high = model.actuator_ctrlrange.T.astype(np.float32)
    return obs, gym.spaces.Box(low=low, high=high, dtype=np.float32)


class MujocoTaskEnv(TaskEnv):
    """The single Gymnasium env of a MuJoCo family, on one plain ``MjModel``/``MjData``.

    Float64 observations, float32 actions in the actuators' control range (not clipped here: the
    model clamps controls, and the control cost sees the action as given, as in Gymnasium).
    ``reset(options={"qpos": ..., "qvel": ...})`` starts from a given state instead of a random
    one, to replay an episode of the batched backend.
    """

    family_cls: ClassVar[type[MujocoFamily]]
    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, task: Mapping[str, Any] | TaskBatch | None = None, **options: Any):
        self.family = self.family_cls(**options)
        self.distribution = self.family.distribution
        self.model = self.family.build_model()
        self.data = mujoco.MjData(self.model)
        self._base = base_values(self.model, self.family.dynamics_groups())
        self.frame_skip = self.family.frame_skip
        self.init_qpos = self.model.qpos0.copy()
        self.init_qvel = np.zeros(self.model.nv)
        self.state: dict[str, np.ndarray] = {
            name: getattr(self.data, name) for name in ("qpos", "qvel", *self.family.derived_fields)
        }
        super().__init__(task)
        obs_dim = self.family.observe(np, self.state, self.task).shape[-1]
        self.observation_space, self.action_space = _spaces(self.model, obs_dim, np.float64)

    @property
    def dt(self) -> float:
        return float(self.model.opt.timestep) * self.frame_skip

    def _on_task_change(self) -> None:
        if self._base:
            apply_to_model(self.model, self.data, self._base, dynamics_params(self.task))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        scale = self.family.reset_noise_scale
        qpos = self.init_qpos + self.np_random.uniform(-scale, scale, size=self.model.nq)
        if self.family.qvel_noise == "normal":
            qvel = self.init_qvel + scale * self.np_random.standard_normal(self.model.nv)
        else:
            qvel = self.init_qvel + self.np_random.uniform(-scale, scale, size=self.model.nv)
        options = options or {}
        self.data.qpos[:] = options.get("qpos", qpos)
        self.data.qvel[:] = options.get("qvel", qvel)
        mujoco.mj_forward(self.model, self.data)
        return self.family.observe(np, self.state, self.task), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, dtype=np.float64)
        before = self.family.position(np, self.state).copy()
        self.data.ctrl[:] = action
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        velocity = (self.family.position(np, self.state) - before) / self.dt
        obs = self.family.observe(np, self.state, self.task)
        reward = float(self.family.reward(np, self.state, velocity, action, self.task))
        done = self.family.terminated(np, self.state, self.task)
        return obs, reward, bool(done) if done is not None else False, False, {}


class MujocoBatchedEnv(BatchedEnv):
    """``num_tasks * envs_per_task`` simulations of a MuJoCo family in one ``mujoco.batch.Batch``.

    Args:
        num_tasks, envs_per_task, device: as for every BatchedEnv.
        dtype: of observations and rewards (the physics is float64).
        seed: seeds the generator of reset noise (``reset(seed)`` reseeds it).
        max_episode_steps: the horizon (default: the family's).
        nthread: MuJoCo threads; default all cores this process may use.
        torch_threads: torch intra-op threads to set, None to leave torch alone. One by default:
            torch's pool and MuJoCo's compete for the same cores (measured: two torch threads
            beside two MuJoCo threads cost 1.3-3x).
        **options: the family's options (cost weights, reset noise...).

    The state is public as zero-copy torch views of the batch's rows: ``qpos [num_envs, nq]`` and
    ``qvel [num_envs, nv]`` (float64, CPU; writes take effect at the next step). Observations and
    rewards are computed in torch on those views, for all rows at once; with ``device="cuda"``
    they are copied to the GPU once per step (the physics itself runs on the CPU).
    """

    family_cls: ClassVar[type[MujocoFamily]]

    def __init__(
        self,
        num_tasks: int,
        envs_per_task: int = 1,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
        max_episode_steps: int | None = None,
        nthread: int | None = None,
        torch_threads: int | None = 1,
        **options: Any,
    ):
        super().__init__(num_tasks, envs_per_task, device)
        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
        self.family = self.family_cls(**options)
        self.distribution = self.family.distribution
        self.dtype = dtype
        self.max_episode_steps = int(max_episode_steps or self.family.max_episode_steps)
        self.model = self.family.build_model()
        self.batch = mujoco.batch.Batch(
            self.model, self.num_envs, nthread=nthread or available_threads()
        )
        self.dt = float(self.model.opt.timestep) * self.family.frame_skip
        self.generator = torch.Generator().manual_seed(seed)
        self._base = base_values(self.model, self.family.dynamics_groups())
        self.qpos = torch.from_numpy(self.batch.qpos)
        self.qvel = torch.from_numpy(self.batch.qvel)
        self._ctrl = torch.from_numpy(self.batch.ctrl)
        self.state: dict[str, torch.Tensor] = {"qpos": self.qpos, "qvel": self.qvel}
        for name in self.family.derived_fields:
            view = self.batch.bind(name).view()  # read-only output; torch wants a writable view
            view.flags.writeable = True
            self.state[name] = torch.from_numpy(view)
        self._init_qpos = torch.from_numpy(self.model.qpos0.copy())
        self.elapsed = torch.zeros(self.num_envs, dtype=torch.long)
        self.task: dict[str, torch.Tensor] = {}
        probe = self.family.distribution.sample(1, "train", torch.Generator().manual_seed(0))
        probe_state = {k: v[:1] for k, v in self.state.items()}
        probe_task = {k: v.double() for k, v in probe.params.items()}
        obs_dim = self.family.observe(torch, probe_state, probe_task).shape[-1]
        np_dtype = torch.empty((), dtype=dtype).numpy().dtype
        self.single_observation_space, self.single_action_space = _spaces(
            self.model, obs_dim, np_dtype
        )

    @property
    def nthread(self) -> int:
        return self.batch.nthread

    # --- the contract -------------------------------------------------------------------------
    def set_tasks(self, tasks: TaskBatch) -> None:
        """Fix the tasks until the next call: objective parameters and per-simulation dynamics.

        Takes effect at once, without rebuilding the batch; call :meth:`reset` to start fresh
        episodes under the new tasks.
        """
        self._check_tasks(tasks)
        self.tasks = tasks
        self.task = {
            k: v.detach()
            .to("cpu", torch.float64 if v.is_floating_point() else v.dtype)
            .repeat_interleave(self.envs_per_task, dim=0)
            for k, v in tasks.params.items()
        }
        if self._base:
            log_scales = dynamics_params(self.task)  # group -> [num_envs, *field shape]
            for group, default in self._base.items():
                values = (
                    default
                    if group not in log_scales
                    else scaled_values(default, log_scales[group])
                )
                self.batch.expand(PARAMETER_GROUPS[group])[...] = values
            self.batch.set_const()

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if self.tasks is None:
            raise RuntimeError("call set_tasks(TaskBatch) before reset(): the env draws no tasks")
        if seed is not None:
            self.generator.manual_seed(seed)
        self.elapsed.zero_()
        self._reset_rows(None)
        return self._output(self.family.observe(torch, self.state, self.task))

    def step(self, action: torch.Tensor) -> StepResult:
        action = self._check_action(action)
        self._ctrl.copy_(action)
        before = self.family.position(torch, self.state).clone()
        self.batch.step(nstep=self.family.frame_skip)
        velocity = (self.family.position(torch, self.state) - before) / self.dt
        obs = self.family.observe(torch, self.state, self.task)
        reward = self.family.reward(torch, self.state, velocity, action, self.task)
        terminated = self.family.terminated(torch, self.state, self.task)
        if terminated is None:
            terminated = torch.zeros(self.num_envs, dtype=torch.bool)
        self.elapsed += 1
        truncated = (self.elapsed >= self.max_episode_steps) & ~terminated
        done = terminated | truncated
        final_obs = obs
        if done.any():
            rows = done.nonzero()[:, 0]
            self._reset_rows(rows)
            self.elapsed[rows] = 0
            obs = obs.clone()
            obs[rows] = self.family.observe(
                torch,
                {k: v[rows] for k, v in self.state.items()},
                {k: v[rows] for k, v in self.task.items()},
            )
        return (
            self._output(obs),
            self._output(reward),
            terminated.to(self.device),
            truncated.to(self.device),
            {"final_obs": self._output(final_obs)},
        )

    def close(self) -> None:
        self.__dict__.pop("batch", None)

    # --- internals ----------------------------------------------------------------------------
    def _reset_rows(self, rows: torch.Tensor | None) -> None:
        """Reset ``rows`` (all if None) to the default state plus noise, then run ``mj_forward``
        on them, as Gymnasium's ``reset`` does (derived fields then describe the new state)."""
        ids = None if rows is None else rows.numpy().astype(np.int32)
        n = self.num_envs if rows is None else len(rows)
        self.batch.reset(ids, stage=mujoco.mjtStage.mjSTAGE_NONE)
        dq, dv = _reset_noise(self.family, n, self.model.nq, self.model.nv, self.generator)
        index = slice(None) if rows is None else rows
        self.qpos[index] = self._init_qpos + dq
        self.qvel[index] = dv
        self.batch.forward(ids)

    def _check_action(self, action: torch.Tensor) -> torch.Tensor:
        shape = (self.num_envs, *(self.single_action_space.shape or ()))
        if tuple(action.shape) != shape:
            raise ValueError(f"action has shape {tuple(action.shape)}; expected {shape}")
        return action.detach().to("cpu", torch.float64)

    def _output(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, self.dtype)
