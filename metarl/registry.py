"""Registration of task families and the ``make_batched_env`` seam.

A family is registered once, under a namespaced, versioned id such as ``metarl/PointNav-v0``:

* with Gymnasium (``gymnasium.make(id)`` gives a single :class:`~metarl.env.TaskEnv` with a
  settable task; ``gymnasium.make_vec(id, n)`` gives the family's batched torch env when it has
  one), and
* here, recording its :class:`~metarl.tasks.TaskDistribution` and the batched implementations
  each backend can build.

A user family needs only a distribution and a single-env entry point; it then runs on the
``gymnasium`` backend (Gymnasium's sync/async vector envs), with the same trainers and CLI.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch

from metarl.env import BatchedEnv
from metarl.tasks import TaskDistribution, check_choice

__all__ = [
    "Backend",
    "TaskEnvSpec",
    "register_task_env",
    "make_batched_env",
    "make_distribution",
    "make_env",
    "task_env_spec",
    "list_task_envs",
    "check_task_env",
]

Backend = Literal["torch", "mujoco", "warp", "gymnasium"]
BACKENDS: tuple[str, ...] = ("torch", "mujoco", "warp", "gymnasium")


@dataclass(frozen=True)
class TaskEnvSpec:
    """What the registry knows of one task family."""

    id: str
    distribution: Callable[..., TaskDistribution]
    entry_point: str | Callable[..., gym.Env]
    max_episode_steps: int
    batched_entry_points: Mapping[str, str | Callable[..., BatchedEnv]] = field(
        default_factory=dict
    )
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def backends(self) -> tuple[str, ...]:
        return (*self.batched_entry_points, "gymnasium")

    @property
    def default_backend(self) -> str:
        return next(iter(self.batched_entry_points), "gymnasium")


_REGISTRY: dict[str, TaskEnvSpec] = {}


def _load(entry: str | Callable[..., Any]) -> Callable[..., Any]:
    if callable(entry):
        return entry
    module, _, attr = entry.partition(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


def _ensure_builtin_families() -> None:
    # The library never imports a concrete env module by name except here, lazily: importing the
    # `envs` package registers every built-in family (DESIGN.md, Layout).
    try:
        importlib.import_module("envs")
    except ModuleNotFoundError as err:  # pragma: no cover - a broken install
        if err.name != "envs":
            raise


def register_task_env(
    id: str,
    *,
    distribution: TaskDistribution | Callable[..., TaskDistribution],
    entry_point: str | Callable[..., gym.Env],
    max_episode_steps: int,
    batched_entry_points: Mapping[str, str | Callable[..., BatchedEnv]] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    description: str = "",
) -> TaskEnvSpec:
    """Register a task family with Gymnasium and with metarl.

    Args:
        id: namespaced, versioned id, e.g. ``"myproject/Reacher-v0"``.
        distribution: the family's TaskDistribution (an instance, or a factory taking the
            family's kwargs).
        entry_point: the single-env class (``"module:Class"`` or a callable) of a
            :class:`~metarl.env.TaskEnv` subclass (anything with a settable ``task``).
        max_episode_steps: the episode horizon.
        batched_entry_points: batched implementations by backend, e.g.
            ``{"torch": "envs.point_nav:PointNavBatched"}``. Without any, the family runs on the
            ``gymnasium`` backend.
        kwargs: default keyword arguments of the family. They go to the envs *and* to the
            distribution factory, so a distribution takes the options it uses and ignores the
            rest (``**_``), e.g. ``num_arms`` matters to both, ``reward_std`` only to the env.
    """
    if "/" not in id or "-v" not in id:
        raise ValueError(f"id={id!r} must be namespaced and versioned, like 'metarl/PointNav-v0'")
    batched = dict(batched_entry_points or {})
    for backend in batched:
        check_choice(f"backend of {id}", backend, BACKENDS[:3])
    factory = (
        distribution
        if not isinstance(distribution, TaskDistribution)
        else (lambda **_: distribution)
    )
    spec = TaskEnvSpec(
        id, factory, entry_point, max_episode_steps, batched, dict(kwargs or {}), description
    )
    _REGISTRY[id] = spec
    vector_entry = None
    if "torch" in batched:
        vector_entry = _vector_entry(id)
    if id in gym.registry:
        del gym.registry[id]
    gym.register(
        id=id,
        entry_point=entry_point,
        vector_entry_point=vector_entry,
        max_episode_steps=max_episode_steps,
        kwargs=dict(kwargs or {}),
        disable_env_checker=False,
    )
    return spec


class TorchVectorEnv(gym.vector.VectorEnv):
    """Gymnasium's VectorEnv API over a batched torch env (``gymnasium.make_vec``).

    ``reset`` returns ``(obs, info)`` as Gymnasium users expect; arrays stay torch tensors on the
    env's device. One task per env, drawn from the ``train`` split with seed 0 until
    ``set_tasks`` is called.
    """

    def __init__(self, env: BatchedEnv):
        self.env = env
        self.num_envs = env.num_envs
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space
        self.observation_space = gym.vector.utils.batch_space(
            env.single_observation_space, self.num_envs
        )
        self.action_space = gym.vector.utils.batch_space(env.single_action_space, self.num_envs)
        self.metadata = dict(env.metadata)

    def set_tasks(self, tasks: Any) -> None:
        self.env.set_tasks(tasks)

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):  # type: ignore[override]
        return self.env.reset(seed=seed if isinstance(seed, int) else None), {}

    def step(self, actions: Any):  # type: ignore[override]
        return self.env.step(torch.as_tensor(actions, device=self.env.device))

    def close_extras(self, **kwargs: Any) -> None:
        self.env.close()


def _vector_entry(env_id: str) -> Callable[..., gym.vector.VectorEnv]:
    """``gymnasium.make_vec(id, num_envs)`` -> the torch batched env, one task per env."""

    def make(
        num_envs: int, max_episode_steps: int | None = None, **kwargs: Any
    ) -> gym.vector.VectorEnv:
        env = make_batched_env(env_id, num_tasks=num_envs, backend="torch", **kwargs)
        env.set_tasks(
            make_distribution(env_id, **kwargs).sample(
                num_envs, "train", torch.Generator().manual_seed(0)
            )
        )
        return TorchVectorEnv(env)

    return make


def list_task_envs() -> list[str]:
    """Ids of every registered task family (built-in families included)."""
    _ensure_builtin_families()
    return sorted(_REGISTRY)


def task_env_spec(env_id: str) -> TaskEnvSpec:
    """The spec of ``env_id``; an unknown id gets an error with close matches."""
    _ensure_builtin_families()
    if env_id not in _REGISTRY:
        known = sorted(_REGISTRY)
        close = difflib.get_close_matches(env_id, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"env={env_id!r} is not a registered task family.{hint} Registered: {', '.join(known)}"
        )
    return _REGISTRY[env_id]


def _merged_kwargs(spec: TaskEnvSpec, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {**spec.kwargs, **kwargs}


def make_distribution(env_id: str, **kwargs: Any) -> TaskDistribution:
    """The TaskDistribution of a registered family."""
    spec = task_env_spec(env_id)
    return _call_accepting(spec.distribution, _merged_kwargs(spec, kwargs))


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """A single Gymnasium env of the family (same as ``gymnasium.make``)."""
    task_env_spec(env_id)
    return gym.make(env_id, **kwargs)


def make_batched_env(
    env_id: str,
    num_tasks: int,
    envs_per_task: int = 1,
    device: str | torch.device = "cpu",
    backend: Backend | str | None = None,
    **kwargs: Any,
) -> BatchedEnv:
    """Build ``num_tasks * envs_per_task`` environments of ``env_id`` on ``backend``.

    ``backend=None`` picks the family's first batched backend (``torch`` for tensor families,
    ``mujoco`` for MuJoCo families), or ``gymnasium`` when it has none.
    """
    spec = task_env_spec(env_id)
    chosen: str = backend or spec.default_backend
    check_choice(f"backend for {env_id}", chosen, spec.backends)
    kw = _merged_kwargs(spec, kwargs)
    if chosen == "gymnasium":
        from metarl.backends.gym_vector import GymnasiumBatchedEnv

        return GymnasiumBatchedEnv(
            env_id,
            num_tasks,
            envs_per_task,
            device,
            distribution=make_distribution(env_id, **kwargs),
            **kw,
        )
    factory = _load(spec.batched_entry_points[chosen])
    return _call_accepting(
        factory, dict(num_tasks=num_tasks, envs_per_task=envs_per_task, device=device, **kw)
    )  # type: ignore[no-any-return]


def _call_accepting(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> Any:
    """Call ``fn`` with ``kwargs``; an unexpected keyword gets an error listing the accepted ones."""
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return fn(**kwargs)
    params = sig.parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = [k for k in kwargs if k not in params]
        if unknown:
            accepted = [
                k for k, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
            raise ValueError(
                f"{getattr(fn, '__qualname__', fn)} got unknown option(s) "
                f"{unknown}; accepted: {accepted}"
            )
    return fn(**kwargs)


def check_task_env(env_id: str, seed: int = 0, steps: int = 50, **kwargs: Any) -> dict[str, Any]:
    """Check a registered family the way a user would rely on it; raise on the first failure.

    1. the single env passes ``gymnasium.utils.env_checker.check_env``;
    2. a different task changes rewards or dynamics under the same actions;
    3. the same seed and actions give the same trajectory (seeded determinism);
    4. the batched env builds on each backend, obeys the shapes of the contract.

    Returns a small report (checks passed, per-backend shapes).
    """
    from gymnasium.utils.env_checker import check_env

    report: dict[str, Any] = {"id": env_id}
    env = make_env(env_id, **kwargs)
    check_env(env.unwrapped, skip_render_check=True)
    report["check_env"] = "ok"

    dist = make_distribution(env_id, **kwargs)
    tasks = dist.sample(2, "train", torch.Generator().manual_seed(seed))
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]

    def run(task_index: int) -> np.ndarray:
        env.unwrapped.set_task(tasks.select([task_index]))  # type: ignore[attr-defined]
        obs, _ = env.reset(seed=seed)
        trace = [np.asarray(obs, dtype=np.float64).ravel()]
        for a in actions:
            obs, r, term, trunc, _ = env.step(a)
            trace.append(np.append(np.asarray(obs, dtype=np.float64).ravel(), float(r)))
            if term or trunc:
                obs, _ = env.reset()
        return np.concatenate(trace)

    first, again, other = run(0), run(0), run(1)
    if not np.array_equal(first, again):
        raise AssertionError(
            f"{env_id}: the same task, seed and actions gave different trajectories"
        )
    report["deterministic"] = "ok"
    if np.array_equal(first, other):
        raise AssertionError(
            f"{env_id}: two different tasks gave identical observations and "
            "rewards; does the env read its task?"
        )
    report["task_changes_outcome"] = "ok"
    env.close()

    spec = task_env_spec(env_id)
    for backend in spec.backends:
        if backend == "warp":
            continue  # needs warp-lang; covered by its own tests
        benv = make_batched_env(env_id, num_tasks=2, envs_per_task=2, backend=backend, **kwargs)  # type: ignore[arg-type]
        benv.set_tasks(tasks)
        obs = benv.reset(seed=seed)
        if obs.shape[0] != 4:
            raise AssertionError(f"{env_id}/{backend}: reset gave {obs.shape[0]} rows, expected 4")
        report[f"backend/{backend}"] = list(obs.shape)
        benv.close()
    return report
