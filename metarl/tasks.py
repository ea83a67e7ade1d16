"""Task distributions and task batches.

A :class:`TaskDistribution` owns the parameters of a family of tasks (goals, arm probabilities,
mass multipliers...). Environments never draw task parameters themselves: they receive a
:class:`TaskBatch` through ``set_tasks``. This keeps every source of task randomness behind one
explicit ``torch.Generator`` and lets a run record exactly which tasks it saw.

Splits
    ``train``  tasks meta-training draws from.
    ``test``   held-out draws from the training range (a separate stream: the evaluator seeds it
               independently of training, so the two cannot share a sample by construction).
    ``ood``    (dynamics and velocity families) parameters outside the training range: the
               "unseen dynamics" that fast adaptation is ultimately judged on.
"""

from __future__ import annotations

import difflib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["TaskBatch", "TaskDistribution", "check_choice"]


def check_choice(field_name: str, value: Any, allowed: Sequence[Any]) -> None:
    """Raise a ``ValueError`` naming ``field_name``, the bad ``value`` and what is allowed."""
    if value in allowed:
        return
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"{field_name}={value!r} is not valid; allowed: {', '.join(map(repr, allowed))}.{hint}"
    )


@dataclass
class TaskBatch:
    """Named task parameters with a leading task axis.

    ``params["goal"]`` is ``[n, 2]`` for point navigation, ``params["probs"]`` is ``[n, k]`` for
    bandits, and so on. ``family`` and ``split`` say where the tasks came from.
    """

    family: str
    split: str
    params: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        sizes = {name: t.shape[0] for name, t in self.params.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"TaskBatch params disagree on the task axis: {sizes}")

    def __len__(self) -> int:
        return next(iter(self.params.values())).shape[0] if self.params else 0

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return self.params[name]
        except KeyError:
            check_choice("task parameter", name, list(self.params))
            raise

    def __iter__(self) -> Iterator[str]:
        return iter(self.params)

    def to(self, device: torch.device | str) -> TaskBatch:
        return TaskBatch(self.family, self.split, {k: v.to(device) for k, v in self.params.items()})

    def select(self, index: torch.Tensor | slice | Sequence[int]) -> TaskBatch:
        """The sub-batch of tasks at ``index`` (along the task axis)."""
        if not isinstance(index, slice | torch.Tensor):
            index = torch.as_tensor(index, dtype=torch.long)
        return TaskBatch(self.family, self.split, {k: v[index] for k, v in self.params.items()})

    @staticmethod
    def concat(batches: Sequence[TaskBatch]) -> TaskBatch:
        first = batches[0]
        return TaskBatch(
            first.family,
            first.split,
            {k: torch.cat([b.params[k] for b in batches]) for k in first.params},
        )

    # --- serialization: a run records exactly which tasks it trained and tested on ------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "split": self.split,
            "params": {
                k: {
                    "dtype": str(v.dtype).removeprefix("torch."),
                    "shape": list(v.shape),
                    "data": v.detach().cpu().tolist(),
                }
                for k, v in self.params.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskBatch:
        params = {}
        for k, v in data["params"].items():
            dtype = getattr(torch, v["dtype"])
            params[k] = torch.tensor(v["data"], dtype=dtype).reshape(v["shape"])
        return cls(data["family"], data["split"], params)

    def to_json(self) -> str:
        # Python floats print with round-trip precision, so float32 and float64 survive exactly.
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> TaskBatch:
        return cls.from_dict(json.loads(text))


class TaskDistribution(ABC):
    """A parameterized family of tasks with declared splits.

    Subclasses set ``family`` and ``splits`` and implement :meth:`_sample`, drawing only from the
    generator they are given: no global RNG anywhere, so a seed fully determines the tasks.
    """

    family: str = "unnamed"
    splits: tuple[str, ...] = ("train", "test")

    def sample(
        self, n: int, split: str = "train", generator: torch.Generator | None = None
    ) -> TaskBatch:
        """Draw ``n`` tasks of ``split`` (a TaskBatch on the CPU, float32 unless stated)."""
        check_choice("split", split, self.splits)
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n={n!r} must be a positive int (number of tasks)")
        if generator is None:
            raise ValueError(
                "sample() needs an explicit torch.Generator: metarl never draws tasks from the "
                "global RNG (pass generator=torch.Generator().manual_seed(seed))"
            )
        params = self._sample(n, split, generator)
        return TaskBatch(self.family, split, params)

    @abstractmethod
    def _sample(self, n: int, split: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Return the named parameter tensors of ``n`` tasks, each with a leading task axis."""

    def describe(self) -> dict[str, Any]:
        """A JSON-able description of the family (ranges per split), for ``metarl list`` and runs."""
        return {"family": self.family, "splits": list(self.splits)}


def uniform(
    n: int,
    low: float | torch.Tensor,
    high: float | torch.Tensor,
    shape: Sequence[int],
    generator: torch.Generator,
) -> torch.Tensor:
    """``n`` draws of U[low, high) of the given per-task ``shape``, from ``generator``."""
    u = torch.rand((n, *shape), generator=generator)
    return low + (high - low) * u


def split_range(
    split: str, train: tuple[float, float], ood: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """The interval(s) a scalar parameter is drawn from for ``split``.

    ``train`` and ``test`` share the training range; ``ood`` is the union of intervals outside it.
    """
    return [train] if split in ("train", "test") else list(ood)


def uniform_union(
    n: int,
    intervals: Sequence[tuple[float, float]],
    shape: Sequence[int],
    generator: torch.Generator,
) -> torch.Tensor:
    """Uniform draws from a union of disjoint intervals, weighted by their lengths."""
    lows = torch.tensor([a for a, _ in intervals], dtype=torch.float64)
    widths = torch.tensor([b - a for a, b in intervals], dtype=torch.float64)
    # Inverse CDF of the union: pick a point in [0, total width) and walk the intervals.
    u = torch.rand((n, *shape), generator=generator, dtype=torch.float64) * widths.sum()
    edges = torch.cumsum(widths, 0)
    which = torch.searchsorted(edges, u.reshape(-1), right=True).clamp(max=len(intervals) - 1)
    start = edges[which] - widths[which]
    out = lows[which] + (u.reshape(-1) - start)
    return out.reshape(n, *shape).float()
