"""Dynamics randomization for any MJCF model: named parameter groups, log-uniform multipliers.

A task of a dynamics family is a set of multipliers on the model's physical parameters, relative
to the values the MJCF file compiles to. Following the RandParams tasks of ProMP (Rothfuss et al.
2019, arXiv:1810.06784; ANCHORS.md section 5), every element of a randomized array gets its own
multiplier ``base ** u``:

* ``train`` and ``test``: ``u ~ U(-limit, limit)``; ``test`` is a held-out stream of draws from
  the same range (the evaluator seeds it apart from training).
* ``ood``: ``|u| ~ U(limit, ood_limit]`` with a random sign, so every element lies outside the
  training range: the "unseen dynamics" adaptation is judged on.

Task parameters are the natural logs of the multipliers, one tensor per group with the shape of
the MuJoCo array: ``log_scale/body_mass [n, nbody]``, ``log_scale/body_inertia [n, nbody, 3]``,
``log_scale/geom_friction [n, ngeom, 3]``... They are float64 so the multiplier a run records in
JSON is bit for bit the one it simulated. Storing ``log`` rather than the multiplier keeps the
parameters symmetric around the default model (0 = unchanged) for an oracle policy's input.

The same two functions apply a task to one ``MjModel`` (single Gymnasium env) and to the
per-simulation fields of a ``mujoco.batch.Batch`` (batched backend), so both see identical
numbers; after either, MuJoCo's ``mj_setConst`` recomputes the constants derived from them
(``body_subtreemass``, ``dof_invweight0``, ...), which an edit of ``body_mass`` alone would leave
stale.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import torch

from metarl.tasks import TaskBatch, TaskDistribution, check_choice

__all__ = [
    "PARAMETER_GROUPS",
    "RAND_PARAMS",
    "LogUniform",
    "RandomDynamics",
    "WithDynamics",
    "apply_to_model",
    "base_values",
    "dynamics_params",
    "parse_groups",
    "record_splits",
    "UNSEEN_DYNAMICS",
    "sample_splits",
    "scaled_values",
]

PREFIX = "log_scale/"

#: Named parameter groups -> the MuJoCo model field each one scales ("opt." = an MjOption field).
PARAMETER_GROUPS: dict[str, str] = {
    "body_mass": "body_mass",
    "body_inertia": "body_inertia",
    "dof_damping": "dof_damping",
    "geom_friction": "geom_friction",
    "gravity": "opt.gravity",
    "actuator_gear": "actuator_gear",
}


@dataclass(frozen=True)
class LogUniform:
    """Multipliers ``base ** u``: ``u ~ U(-limit, limit)`` to train, ``limit < |u| <= ood_limit`` ood.

    ``limit = 0`` trains on the model's own dynamics only (every multiplier exactly 1) and keeps
    every randomized robot for ``ood``: adaptation to dynamics never seen in training.
    """

    base: float
    limit: float = 3.0
    ood_limit: float = 4.0

    def __post_init__(self) -> None:
        if not self.base > 1:
            raise ValueError(f"LogUniform base={self.base!r} must be > 1")
        if not 0 <= self.limit < self.ood_limit:
            raise ValueError(
                f"LogUniform needs 0 <= limit < ood_limit, got limit={self.limit!r}, "
                f"ood_limit={self.ood_limit!r}"
            )

    def range(self, split: str) -> tuple[float, float]:
        """The multiplier range of ``split`` (``ood``: the outer bounds of its two intervals)."""
        lim = self.ood_limit if split == "ood" else self.limit
        return self.base**-lim, self.base**lim

    def sample(
        self, n: int, shape: Sequence[int], split: str, generator: torch.Generator
    ) -> torch.Tensor:
        """``n`` draws of ``log(multiplier)`` of the given element ``shape`` (float64)."""
        u = torch.rand((n, *shape), generator=generator, dtype=torch.float64)
        if split == "ood":
            # |exponent| in (limit, ood_limit]: 1 - u is in (0, 1], so the training edge is excluded.
            magnitude = self.limit + (self.ood_limit - self.limit) * (1 - u)
            sign = torch.rand((n, *shape), generator=generator, dtype=torch.float64) < 0.5
            exponent = torch.where(sign, -magnitude, magnitude)
        else:
            exponent = self.limit * (2 * u - 1)
        return exponent * math.log(self.base)


#: ProMP's RandParams ranges (ANCHORS.md section 5): mass, inertia, friction 1.5^U(-3, 3) and
#: damping 1.3^U(-3, 3). The ood limit 4 (1.5^4 = 5.06, 1.3^4 = 2.86) is ours: ProMP had no ood split.
RAND_PARAMS: dict[str, LogUniform] = {
    "body_mass": LogUniform(1.5),
    "body_inertia": LogUniform(1.5),
    "dof_damping": LogUniform(1.3),
    "geom_friction": LogUniform(1.5),
}


#: The same groups and ranges as ``RAND_PARAMS``, all of them held out: families whose objective
#: has no out-of-range values (a direction) train on the default robot and meet these in ``ood``.
UNSEEN_DYNAMICS: dict[str, LogUniform] = {
    group: LogUniform(r.base, 0.0, r.limit) for group, r in RAND_PARAMS.items()
}


def _field(model: mujoco.MjModel, field: str) -> np.ndarray:
    """The live array of a model field; ``opt.<name>`` reaches into ``model.opt``."""
    if field.startswith("opt."):
        return getattr(model.opt, field[4:])  # type: ignore[no-any-return]
    return getattr(model, field)  # type: ignore[no-any-return]


def base_values(model: mujoco.MjModel, groups: Sequence[str]) -> dict[str, np.ndarray]:
    """Copies of the default values of the fields ``groups`` scale, keyed by group."""
    for g in groups:
        check_choice("dynamics parameter group", g, list(PARAMETER_GROUPS))
    return {g: np.array(_field(model, PARAMETER_GROUPS[g]), dtype=np.float64) for g in groups}


def dynamics_params(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The ``log_scale/<group>`` entries of a task, keyed by group, as float64 NumPy arrays."""
    out = {}
    for key, value in params.items():
        if key.startswith(PREFIX):
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu().numpy()
            out[key[len(PREFIX) :]] = np.asarray(value, dtype=np.float64)
    return out


def scaled_values(base: np.ndarray, log_scale: np.ndarray) -> np.ndarray:
    """``base * exp(log_scale)``; ``log_scale`` may carry leading (task or env) axes."""
    return base * np.exp(log_scale)


def apply_to_model(
    model: mujoco.MjModel,
    data: mujoco.MjData,
    base: Mapping[str, np.ndarray],
    log_scales: Mapping[str, np.ndarray],
) -> None:
    """Write one task's multipliers into ``model`` (groups absent from the task get defaults)."""
    for group, default in base.items():
        values = default if group not in log_scales else scaled_values(default, log_scales[group])
        _field(model, PARAMETER_GROUPS[group])[...] = values
    mujoco.mj_setConst(model, data)


class RandomDynamics(TaskDistribution):
    """Log-uniform multipliers on the named parameter groups of any MJCF model.

    Args:
        model: a compiled ``MjModel`` or the path of an MJCF file; only array shapes are read.
        groups: group name (a key of :data:`PARAMETER_GROUPS`) -> its :class:`LogUniform` range.
            Defaults to ProMP's RandParams groups.
        family: the family name TaskBatches carry.
    """

    splits = ("train", "test", "ood")

    def __init__(
        self,
        model: mujoco.MjModel | str | os.PathLike[str],
        groups: Mapping[str, LogUniform] | None = None,
        family: str = "random_dynamics",
    ):
        if not isinstance(model, mujoco.MjModel):
            model = mujoco.MjModel.from_xml_path(os.fspath(model))
        self.groups = dict(RAND_PARAMS if groups is None else groups)
        if not self.groups:
            raise ValueError("RandomDynamics needs at least one parameter group")
        self.shapes = {g: v.shape for g, v in base_values(model, list(self.groups)).items()}
        self.family = family

    def _sample(self, n: int, split: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {
            PREFIX + g: spec.sample(n, self.shapes[g], split, generator)
            for g, spec in self.groups.items()
        }

    def describe(self) -> dict[str, Any]:
        ranges = {}
        for g, spec in self.groups.items():
            lo, hi = spec.range("train")
            olo, ohi = spec.range("ood")
            ranges[g] = {
                "field": PARAMETER_GROUPS[g],
                "shape": list(self.shapes[g]),
                "train/test": f"{spec.base}^U(-{spec.limit}, {spec.limit}) = [{lo:.4g}, {hi:.4g}]",
                "ood": f"{spec.base}^(+-U({spec.limit}, {spec.ood_limit}]) = "
                f"[{olo:.4g}, {lo:.4g}) U ({hi:.4g}, {ohi:.4g}]",
            }
        return {**super().describe(), "log_scale": ranges}


def sample_splits(
    distribution: TaskDistribution, sizes: Mapping[str, int], seed: int
) -> dict[str, TaskBatch]:
    """Draw each split from its own generator, seeded from ``seed`` and the split's position.

    Separate streams make ``test`` and ``ood`` independent of how many training tasks a run
    draws, and the same seed always gives the same tasks.
    """
    out = {}
    for split, n in sizes.items():
        check_choice("split", split, distribution.splits)
        stream = seed * 1_000_003 + distribution.splits.index(split)
        out[split] = distribution.sample(n, split, torch.Generator().manual_seed(stream))
    return out


def record_splits(
    run_dir: str | os.PathLike[str],
    distribution: TaskDistribution,
    sizes: Mapping[str, int],
    seed: int,
    filename: str = "tasks.json",
) -> dict[str, TaskBatch]:
    """Sample the splits (see :func:`sample_splits`) and write them, with the seed and ranges,
    to ``run_dir/filename`` (atomically), so a run records exactly which tasks it used."""
    splits = sample_splits(distribution, sizes, seed)
    record = {
        "seed": seed,
        "distribution": distribution.describe(),
        "splits": {name: batch.to_dict() for name, batch in splits.items()},
    }
    path = Path(run_dir) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)
    return splits


def parse_groups(groups: Mapping[str, LogUniform | Sequence[float]]) -> dict[str, LogUniform]:
    """Groups as :class:`LogUniform`; ``(base, limit, ood_limit)`` tuples (from a config) accepted."""
    out = {}
    for name, spec in groups.items():
        check_choice("dynamics parameter group", name, list(PARAMETER_GROUPS))
        out[name] = spec if isinstance(spec, LogUniform) else LogUniform(*spec)
    return out


class WithDynamics(TaskDistribution):
    """An objective's tasks (velocity, goal...) on a robot whose dynamics are randomized too.

    Each split draws both parts from that split; where the objective has no ``ood`` split (a
    direction), ``ood`` tasks pair in-range objectives (its ``test`` draws) with ood dynamics.
    """

    def __init__(self, objective: TaskDistribution, dynamics: RandomDynamics):
        self.objective, self.dynamics = objective, dynamics
        self.family = objective.family
        self.splits = tuple(dict.fromkeys((*objective.splits, *dynamics.splits)))

    def _sample(self, n: int, split: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
        objective_split = split if split in self.objective.splits else "test"
        return {
            **self.objective.sample(n, objective_split, generator).params,
            **self.dynamics.sample(n, split, generator).params,
        }

    def describe(self) -> dict[str, Any]:
        return {
            **self.objective.describe(),
            **self.dynamics.describe(),
            "splits": list(self.splits),
        }
