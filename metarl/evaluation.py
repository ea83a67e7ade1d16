"""One evaluator for every learner: adaptation curves on held-out and out-of-range tasks.

Every agent the evaluator scores (a meta-learner, a classic bandit algorithm, a PPO baseline)
implements :class:`Adaptive`: given a batched env whose tasks are set, it adapts and reports an
:class:`AdaptationCurve`, the per-task score at each adaptation point (after each episode of a
trial for RL²-style agents and classic baselines, after each gradient step for the MAML family).
The evaluator turns curves from several splits and seeds into means with 95% confidence
intervals, and writes them to ``results.json``, TensorBoard and a PNG plot.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from metarl.env import BatchedEnv
from metarl.tasks import TaskBatch

__all__ = [
    "AdaptationCurve",
    "Adaptive",
    "Evaluator",
    "EvalResult",
    "mean_ci",
]


@dataclass
class AdaptationCurve:
    """Per-task scores at each adaptation point.

    Attributes:
        returns: ``[num_tasks, num_points]`` mean return at each point (e.g. the return of the
            k-th episode of a trial, or the return after k gradient steps).
        axis: what the points are: ``"episode"`` (1-based episode of a trial) or
            ``"gradient_step"`` (0 = before adaptation).
        success: optional ``[num_tasks, num_points]`` success rate in [0, 1].
        env_steps: environment steps the adaptation consumed.
    """

    returns: torch.Tensor
    axis: str = "episode"
    success: torch.Tensor | None = None
    env_steps: int = 0

    @property
    def points(self) -> list[int]:
        n = self.returns.shape[1]
        return list(range(1, n + 1)) if self.axis == "episode" else list(range(n))

    @property
    def trial_return(self) -> torch.Tensor:
        """``[num_tasks]`` total return over the whole trial (the RL² paper's score)."""
        return self.returns.sum(dim=1)

    @staticmethod
    def concat(curves: Sequence[AdaptationCurve]) -> AdaptationCurve:
        """Stack curves of the same axis along the task axis (several chunks or seeds)."""
        succ = [c.success for c in curves]
        return AdaptationCurve(
            torch.cat([c.returns for c in curves]),
            curves[0].axis,
            torch.cat(succ) if all(s is not None for s in succ) else None,  # type: ignore[arg-type]
            sum(c.env_steps for c in curves),
        )


@runtime_checkable
class Adaptive(Protocol):
    """Anything the evaluator can score."""

    def adaptation_curve(
        self, env: BatchedEnv, tasks: TaskBatch, generator: torch.Generator
    ) -> AdaptationCurve:
        """Adapt to each task of ``tasks`` in ``env`` and report the curve.

        The caller has built ``env`` with ``num_tasks == len(tasks)`` but has not called
        ``set_tasks``; the agent does that (it may need several envs per task).
        """
        ...


# Two-sided 97.5% quantiles of Student's t, for small samples (seeds); normal beyond 30.
_T975 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    15: 2.131,
    20: 2.086,
    25: 2.060,
    30: 2.042,
}


def _t_quantile(dof: int) -> float:
    if dof > 30:
        return 1.960
    key = max(k for k in _T975 if k <= dof)
    return _T975[key]


def mean_ci(values: torch.Tensor, dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and half-width of its 95% confidence interval along ``dim`` (Student t).

    With one sample the half-width is NaN: there is no interval to give.
    """
    values = values.double()
    n = values.shape[dim]
    mean = values.mean(dim)
    if n < 2:
        return mean, torch.full_like(mean, math.nan)
    sem = values.std(dim, unbiased=True) / math.sqrt(n)
    return mean, _t_quantile(n - 1) * sem


@dataclass
class EvalResult:
    """Evaluation of one agent on one split: curve statistics over tasks (and seeds)."""

    split: str
    axis: str
    points: list[int]
    mean: list[float]
    ci95: list[float]
    trial_return_mean: float
    trial_return_ci95: float
    num_tasks: int
    success_mean: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_curve(cls, split: str, curve: AdaptationCurve) -> EvalResult:
        mean, ci = mean_ci(curve.returns)
        tmean, tci = mean_ci(curve.trial_return)
        succ = curve.success.double().mean(0).tolist() if curve.success is not None else None
        return cls(
            split,
            curve.axis,
            curve.points,
            mean.tolist(),
            ci.tolist(),
            float(tmean),
            float(tci),
            curve.returns.shape[0],
            succ,
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Evaluator:
    """Scores an agent on the ``test`` (and ``ood``) splits of a family.

    Tasks come from their own generator, seeded by ``seed`` and distinct from the training
    stream, so evaluation tasks never overlap training tasks by construction and are the same
    for every agent evaluated with the same seed. ``fixed_tasks`` gives a split its tasks
    instead (e.g. the tasks a paper evaluated on); ``num_tasks`` then does not apply to it.
    """

    def __init__(
        self,
        env_id: str,
        splits: Sequence[str] = ("test",),
        num_tasks: int = 40,
        seed: int = 10_000,
        device: str | torch.device = "cpu",
        backend: str | None = None,
        chunk_size: int | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
        fixed_tasks: Mapping[str, TaskBatch] | None = None,
    ):
        from metarl.registry import make_distribution

        self.env_id = env_id
        self.distribution = make_distribution(env_id, **(env_kwargs or {}))
        for s in splits:
            if s not in self.distribution.splits:
                raise ValueError(
                    f"eval split {s!r} is not a split of {env_id}; "
                    f"it has {list(self.distribution.splits)}"
                )
        self.splits = tuple(splits)
        self.num_tasks = num_tasks
        self.seed = seed
        self.device = device
        self.backend = backend
        self.chunk_size = chunk_size or num_tasks
        self.env_kwargs = dict(env_kwargs or {})
        self.fixed_tasks = dict(fixed_tasks or {})
        for s, batch in self.fixed_tasks.items():
            if s not in self.splits or batch.split != s:
                raise ValueError(
                    f"fixed tasks for split {s!r} (a batch of split {batch.split!r}): the "
                    f"evaluated splits are {list(self.splits)}"
                )
            if batch.family != self.distribution.family:
                raise ValueError(
                    f"fixed tasks of family {batch.family!r} cannot be evaluated on {env_id}, "
                    f"whose family is {self.distribution.family!r}"
                )

    def tasks(self, split: str) -> TaskBatch:
        if split in self.fixed_tasks:
            return self.fixed_tasks[split]
        gen = torch.Generator().manual_seed(self.seed + self.distribution.splits.index(split))
        return self.distribution.sample(self.num_tasks, split, gen)

    def curve(self, agent: Adaptive, split: str, envs_per_task: int = 1) -> AdaptationCurve:
        """The agent's adaptation curve on every task of ``split`` (in chunks of tasks)."""
        from metarl.registry import make_batched_env

        tasks = self.tasks(split)
        gen = torch.Generator().manual_seed(self.seed + 7919)
        curves = []
        for start in range(0, len(tasks), self.chunk_size):
            chunk = tasks.select(slice(start, start + self.chunk_size))
            env = make_batched_env(
                self.env_id, len(chunk), envs_per_task, self.device, self.backend, **self.env_kwargs
            )  # type: ignore[arg-type]
            try:
                curves.append(agent.adaptation_curve(env, chunk, gen))
            finally:
                env.close()
        return AdaptationCurve.concat(curves)

    def evaluate(self, agent: Adaptive, envs_per_task: int = 1) -> dict[str, EvalResult]:
        return {
            s: EvalResult.from_curve(s, self.curve(agent, s, envs_per_task)) for s in self.splits
        }


def write_results(
    results: Mapping[str, Mapping[str, EvalResult]], run_dir: str | Path, title: str = ""
) -> Path:
    """Write ``results.json`` and ``adaptation.png`` (one line per agent and split) to ``run_dir``.

    ``results`` maps an agent name to its per-split results.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        agent: {s: r.to_dict() for s, r in per_split.items()}
        for agent, per_split in results.items()
    }
    tmp = run_dir / "results.json.tmp"
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(run_dir / "results.json")
    plot_adaptation(results, run_dir / "adaptation.png", title)
    return run_dir / "results.json"


def plot_adaptation(
    results: Mapping[str, Mapping[str, EvalResult]], path: str | Path, title: str = ""
) -> None:
    """Adaptation curves with 95% CI bands, one panel per split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    splits = list(dict.fromkeys(s for per_split in results.values() for s in per_split))
    fig, axes = plt.subplots(1, len(splits), figsize=(5.5 * len(splits), 4), squeeze=False)
    for ax, split in zip(axes[0], splits, strict=True):
        xlabel = "episode"
        for agent, per_split in results.items():
            if split not in per_split:
                continue
            r = per_split[split]
            xlabel = "gradient steps" if r.axis == "gradient_step" else "episode of the trial"
            mean = torch.tensor(r.mean)
            ci = torch.tensor(r.ci95).nan_to_num(0.0)
            ax.plot(r.points, mean, marker="o" if len(r.points) <= 20 else None, label=agent)
            ax.fill_between(r.points, mean - ci, mean + ci, alpha=0.2)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("return")
        ax.set_title(f"{title} [{split}]".strip())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
