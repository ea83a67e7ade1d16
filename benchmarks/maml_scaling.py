"""Time per MAML-TRPO meta-iteration: the task-batched inner loop against a per-task loop.

    python benchmarks/maml_scaling.py                      # meta-batch 1, 10, 40 + paper settings
    python benchmarks/maml_scaling.py --tasks 1 10 --repeats 2
    python benchmarks/maml_scaling.py --tasks --repeats 5  # the paper setting only

The implementations run the same algorithm (second-order MAML-TRPO on ``metarl/PointNav-v0``,
1 inner step, 20 trajectories of 100 steps per task and step, 10 CG iterations):

* ``batched``: metarl's design (DESIGN.md, Policy): one batched env for the meta-batch, weights
  stacked on a task axis, one forward and one ``autograd.grad`` for every inner step;
* ``per-task loop``: what a per-task implementation does (pytorch-maml-rl, learn2learn's
  examples): each task rolls out in its own env, adapts with its own forward and
  ``autograd.grad``, and evaluates its own surrogate, in a Python loop over tasks. The
  backward passes of the outer gradient and of each curvature product then run once over all
  tasks' graphs, as pytorch-maml-rl's do (autograd's double backward: the per-task code a user
  writes has no closed-form curvature).

The batched implementation forms TRPO's curvature products in closed form
(:mod:`metarl.curvature`); to show what batching alone buys, a third column times it with
autograd's products (``closed_form_curvature=False``), the same arithmetic as the loop.

The three are built side by side and timed in alternation, one iteration of each in turn, so
a drift of the machine falls on all alike. It prints the median seconds per meta-iteration, the
time per environment step (the iteration's time over the env steps it sampled), the median of
the per-round time ratios (the speed-up) with their range, then the paper's setting (20 tasks x
20 episodes x 100 steps) for the batched implementation alone: with the curvature products on
10% of the steps (the default, as the TRPO paper), on 20% (the 2D-navigation reproduction's
preset) and 30%, and on the whole batch (the official MAML code), and with the Fisher at the
adapted weights. One iteration's floating-point operations are counted with ``torch.utils.flop_counter`` (GFLOP/iter: batched, batched-AG,
per-task); the batched-AG and per-task ones do the same matrix arithmetic, so their GFLOP/s
compare against the machine's own: a batched product of the hidden layer's shape timed in the
same run. That bounds what batching alone can buy: batched-AG cannot beat the per-task loop
by more than the loop's distance from that throughput.

``--threads`` sets torch's intra-op threads (1 by default); the load average is printed before
and after. Every implementation runs with
``metarl.runtime.keep_freed_memory`` applied, as ``metarl train`` does (``--malloc-default``
to compare without).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace
from typing import Any

import torch
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from metarl.adaptation import InnerRule, StepBatch
from metarl.algorithms.maml import MAMLTRPO, MAMLConfig, MetaBatch
from metarl.policies import MLPPolicy, Params
from metarl.runtime import keep_freed_memory, set_torch_threads

ENV = "metarl/PointNav-v0"


class LoopRule(InnerRule):
    """Inner gradients as a Python loop over tasks: one forward and one autograd.grad per task
    (every inner step, and the inner gradients the curvature products differentiate)."""

    def gradients(
        self, policy: MLPPolicy, params: Params, batch: StepBatch, create_graph: bool
    ) -> list[torch.Tensor]:
        per_task = []
        for i in range(batch.num_tasks):
            one = StepBatch(
                *(
                    x[i : i + 1]
                    for x in (
                        batch.obs,
                        batch.actions,
                        batch.advantages,
                        batch.log_probs,
                        batch.weight,
                    )
                )
            )
            row = {k: v[i : i + 1] for k, v in params.items()}
            per_task.append(super().gradients(policy, row, one, create_graph))
        return [torch.cat(g) for g in zip(*per_task, strict=True)]


def _loop_forward(policy: MLPPolicy):  # noqa: ANN202
    def forward(obs: torch.Tensor, params: Params) -> torch.Tensor:
        return torch.stack(
            [
                functional_call(policy, {k: v[i] for k, v in params.items()}, (obs[i],))
                for i in range(obs.shape[0])
            ]
        )

    return forward


class PerTaskMAML(MAMLTRPO):
    """MAML-TRPO computed task by task (sampling, inner steps, surrogate, KL)."""

    def __init__(self, env_id: str, config: MAMLConfig, **kwargs: Any):
        super().__init__(env_id, replace(config, closed_form_curvature=False), **kwargs)
        self.rule = LoopRule(**{f: getattr(self.rule, f) for f in self.rule.__dataclass_fields__})
        self.policy.batched_forward = _loop_forward(self.policy)  # type: ignore[method-assign]
        self.task_envs = [
            self.make_env(1, config.episodes_per_task) for _ in range(config.meta_batch_size)
        ]

    def sample(self, with_query: bool = True, differentiable: bool = False) -> MetaBatch:
        tasks, batched_env, meta_batch = self.env.tasks, self.env, self.config.meta_batch_size
        assert tasks is not None
        per_task: list[MetaBatch] = []
        self.config = replace(self.config, meta_batch_size=1)
        try:
            for i, env in enumerate(self.task_envs):
                env.set_tasks(tasks.select([i]))
                self.env = env
                per_task.append(super().sample(with_query, differentiable))
        finally:
            self.env, self.config = batched_env, replace(self.config, meta_batch_size=meta_batch)

        def cat(batches: list[StepBatch]) -> StepBatch:
            return StepBatch(
                *(
                    torch.cat([getattr(b, f) for b in batches])
                    for f in ("obs", "actions", "advantages", "log_probs", "weight")
                )
            )

        first = per_task[0]
        return MetaBatch(
            support=[cat([b.support[k] for b in per_task]) for k in range(len(first.support))],
            query=cat([b.query for b in per_task]) if with_query else None,  # type: ignore[misc]
            returns=[
                statistics.fmean(b.returns[k] for b in per_task) for k in range(len(first.returns))
            ],
            env_steps=sum(b.env_steps for b in per_task),
            chain=[
                {n: torch.cat([b.chain[k][n] for b in per_task]) for n in first.chain[k]}
                for k in range(len(first.chain))
            ],
        )


def time_iterations(
    cls: type, tasks: int, episodes: int, repeats: int, warmup: int, **overrides: Any
) -> tuple[float, float, float]:
    """(median seconds per meta-iteration, env steps per iteration, floating-point operations
    of one more iteration)."""
    cfg = MAMLConfig(meta_batch_size=tasks, episodes_per_task=episodes, **overrides)
    algo = cls(ENV, cfg, seed=1)
    times, steps = [], []
    for i in range(warmup + repeats):
        t = time.perf_counter()
        m = algo.train_step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
            steps.append(m["env_steps"])
    return statistics.median(times), statistics.fmean(steps), iteration_flops(algo)


def time_side_by_side(
    tasks: int, episodes: int, repeats: int, warmup: int
) -> tuple[list[tuple[float, float, float]], list[list[float]]]:
    """The batched implementation (closed-form curvature), the batched one with autograd's
    curvature and the per-task loop, built side by side and timed in alternation (one iteration
    of each in turn), so a drift of the machine (other load, clock, memory) falls on all alike.

    Returns, per implementation, (median seconds per meta-iteration, env steps per iteration,
    floating-point operations of one more iteration), and for each batched implementation the
    per-task / batched time ratio of each of the ``repeats`` rounds.
    """
    cfg = MAMLConfig(meta_batch_size=tasks, episodes_per_task=episodes)
    algos = [
        MAMLTRPO(ENV, cfg, seed=1),
        MAMLTRPO(ENV, replace(cfg, closed_form_curvature=False), seed=1),
        PerTaskMAML(ENV, cfg, seed=1),
    ]
    times: list[list[float]] = [[] for _ in algos]
    steps: list[list[float]] = [[] for _ in algos]
    for i in range(warmup + repeats):
        for j, algo in enumerate(algos):
            t = time.perf_counter()
            m = algo.train_step()
            if i >= warmup:
                times[j].append(time.perf_counter() - t)
                steps[j].append(m["env_steps"])
    stats = [
        (statistics.median(t), statistics.fmean(s), iteration_flops(a))
        for t, s, a in zip(times, steps, algos, strict=True)
    ]
    ratios = [[loop / b for b, loop in zip(times[j], times[2], strict=True)] for j in (0, 1)]
    return stats, ratios


def iteration_flops(algo: MAMLTRPO) -> float:
    """Floating-point operations of one meta-iteration (matrix products, which are nearly all
    of them; forward and every backward pass included)."""
    counter = FlopCounterMode(display=False)
    with counter:
        algo.train_step()
    return float(counter.get_total_flops())


def matmul_throughput(tasks: int, rows: int, width: int, repeats: int = 20) -> float:
    """FLOP/s of ``[tasks, rows, width] @ [tasks, width, width]`` on this machine (float32)."""
    x, w = torch.randn(tasks, rows, width), torch.randn(tasks, width, width)
    torch.bmm(x, w)
    t = time.perf_counter()
    for _ in range(repeats):
        torch.bmm(x, w)
    return 2 * tasks * rows * width * width * repeats / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--tasks",
        type=int,
        nargs="*",
        default=[1, 10, 40],
        help="meta-batch sizes of the side-by-side table (none: the paper setting only)",
    )
    p.add_argument("--episodes", type=int, default=20, help="trajectories per task and step")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--skip-paper", action="store_true")
    p.add_argument(
        "--malloc-default",
        action="store_true",
        help="leave glibc's malloc as it is (metarl.runtime.keep_freed_memory not applied)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads for both implementations (PointNav is torch-only: no MuJoCo "
        "thread pool to leave cores to)",
    )
    args = p.parse_args()
    kept = keep_freed_memory() if not args.malloc_default else False
    set_torch_threads(args.threads)
    load = os.getloadavg()
    print(
        f"# MAML-TRPO (second order) on {ENV}, {args.episodes} trajectories x 100 steps per "
        f"task and step; torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} CPUs, "
        f"keep_freed_memory {kept}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(
        "# batched: metarl (closed-form curvature); batched-AG: the same with autograd's "
        "curvature; speed-up: per-task / batched, median of the rounds (range)"
    )
    header = (
        f"{'tasks':>5} | {'GFLOP/iter':>14} | {'batched s/iter':>14} | {'us/env step':>11} | "
        f"{'GFLOP/s':>7} | {'batched-AG s/iter':>17} | {'per-task s/iter':>15} | "
        f"{'us/env step':>11} | {'GFLOP/s':>7} | {'speed-up':>15} | {'batched-AG':>15}"
    )
    print(header)
    print("-" * len(header))
    for n in args.tasks:
        ((tb, sb, fb), (ta, _, fa), (tl, sl, fl)), (ratios, ratios_ag) = time_side_by_side(
            n, args.episodes, args.repeats, args.warmup
        )
        flops = "/".join(f"{f / 1e9:.1f}" for f in (fb, fa, fl))

        def speedup(r: list[float]) -> str:
            return f"{statistics.median(r):.1f}x ({min(r):.1f}-{max(r):.1f})"

        print(
            f"{n:>5} | {flops:>14} | {tb:>14.3f} | {1e6 * tb / sb:>11.2f} | {fb / tb / 1e9:>7.1f} | "
            f"{ta:>17.3f} | {tl:>15.3f} | {1e6 * tl / sl:>11.2f} | {fl / tl / 1e9:>7.1f} | "
            f"{speedup(ratios):>15} | {speedup(ratios_ag):>15}",
            flush=True,
        )
    hidden = MAMLConfig().hidden[-1]
    for rows in (
        (200, 2000) if args.tasks else ()
    ):  # the curvature subsample's and the full batch's rows per task
        peak = matmul_throughput(max(args.tasks), rows, hidden)
        print(
            f"# this machine: [{max(args.tasks)}, {rows}, {hidden}] @ [{max(args.tasks)}, {hidden}, "
            f"{hidden}] runs at {peak / 1e9:.1f} GFLOP/s",
            flush=True,
        )
    if not args.skip_paper:
        print("\n# paper setting: 20 tasks x 20 trajectories x 100 steps, batched")
        for label, kw in [
            ("exact curvature through the inner step (fvp_subsample 0.1)", {}),
            ("the same on 20% of the steps (fvp_subsample 0.2)", {"fvp_subsample": 0.2}),
            ("the same on 30% of the steps (fvp_subsample 0.3)", {"fvp_subsample": 0.3}),
            (
                "the same on the whole batch (fvp_subsample 1.0, the official code's)",
                {"fvp_subsample": 1.0},
            ),
            (
                "Fisher at the adapted weights (fvp_through_inner=False)",
                {"fvp_through_inner": False},
            ),
        ]:
            t, s, _ = time_iterations(MAMLTRPO, 20, 20, args.repeats, args.warmup, **kw)
            print(
                f"{label}: {t:.3f} s/iter, {1e6 * t / s:.2f} us/env step ({s:.0f} steps)",
                flush=True,
            )
    load = os.getloadavg()
    print(f"# load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
