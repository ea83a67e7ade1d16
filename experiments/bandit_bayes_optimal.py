"""The exact Bayes-optimal ceiling of the RL² paper's n = 10 bandit cells (Duan et al. 2016, Table 1).

A k-armed Bernoulli bandit with ``p_i ~ U[0, 1]`` played for n pulls has a Bayes-optimal policy,
computable exactly by backward induction over the Beta posteriors
(:func:`metarl.baselines.bayes_optimal_value`); its expected trial return over the prior bounds
every agent's, RL²'s included. This script prints, for n = 10 and k = 5, 10, 50:

* the exact prior expectation of the Bayes-optimal agent (the ceiling), and of Gittins (discount
  1 - 1/n), UCB1 (c tuned as below), greedy (random ties) and random, by exact policy evaluation
  over the same posterior states;
* :class:`~metarl.baselines.BayesOptimalBandit`, Gittins and tuned UCB1 on the 1000 ``test`` tasks
  of the RL² results table, drawn and scored as ``experiments/rl2_results.py`` does for its
  baselines (the preset's Evaluator: seed 10000, its ``num_tasks``; UCB1's ``c`` tuned on 1000
  ``train`` tasks over the same grid), so the numbers compare with experiments/results/rl2.md;
* the paper's RL² and how far it lies above the ceiling, in standard errors of a 1000-task mean.

    python experiments/bandit_bayes_optimal.py       # about half a minute on one core
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from functools import cache
from pathlib import Path

import torch
from rl2_results import (
    BASELINE_CACHE,
    PAPER_BANDIT_RL2,
    ROOT,
    finished_runs,
    presets,
    tuned_ucb1_c,
)

from metarl.baselines import UCB1, BayesOptimalBandit, GittinsIndex, bayes_optimal_value
from metarl.baselines.bandits import gittins_indices
from metarl.config import RunConfig
from metarl.evaluation import EvalResult, Evaluator
from metarl.registry import make_batched_env

NUM_PULLS = 10
ARMS = (5, 10, 50)
REPEATS = 20  # trials per test task to estimate the Bayes-optimal agent's mean on those tasks

Index = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (successes, failures) [1, arm]


def policy_value(num_arms: int, num_pulls: int, index: Index) -> float:
    """Exact prior expectation of the index policy that pulls an arm of largest ``index``, ties
    uniformly at random (as ``random_argmax``), on i.i.d. U[0, 1] arms.

    Same posterior states as the Bayes-optimal DP (sorted counts of the pulled arms); the
    indices are computed in float32 from float32 counts, as the agents do, so float ties match.
    """

    @cache
    def value(state: tuple[tuple[int, int], ...]) -> float:
        if sum(s + f for s, f in state) == num_pulls:
            return 0.0
        arms = [*state] + [(0, 0)] * (num_arms - len(state))
        s = torch.tensor([[a[0] for a in arms]], dtype=torch.float32)
        f = torch.tensor([[a[1] for a in arms]], dtype=torch.float32)
        idx = index(s, f)[0]
        chosen = Counter(arms[i] for i in (idx == idx.max()).nonzero()[:, 0].tolist())
        total = 0.0
        for (a, b), count in chosen.items():
            p = (a + 1) / (a + b + 2)
            rest = list(state)
            if a + b:
                rest.remove((a, b))
            win = value(tuple(sorted([*rest, (a + 1, b)])))
            lose = value(tuple(sorted([*rest, (a, b + 1)])))
            total += count / sum(chosen.values()) * (p * (1 + win) + (1 - p) * lose)
        return total

    return value(())


def gittins_index(num_pulls: int) -> Index:
    table = gittins_indices(GittinsIndex(num_pulls).discount, num_pulls).float()
    return lambda s, f: table[s.long(), f.long()]


def ucb_index(c: float) -> Index:
    def index(s: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        pulls = s + f + 2
        total = pulls.sum(dim=-1, keepdim=True)
        return (s + 1) / pulls + c * torch.sqrt(2 * torch.log(total) / pulls)

    return index


def greedy_index(s: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return (s + 1) / (s + f + 2)


def mean_on_tasks(test: Evaluator, repeats: int = REPEATS) -> tuple[float, float]:
    """The Bayes-optimal agent's expected trial return averaged over ``test``'s tasks (each task
    played ``repeats`` times), and the Monte Carlo standard error of that estimate. Its distance
    from the prior expectation is how favourable this particular draw of tasks is."""
    tasks = test.tasks("test")
    many = tasks.select(torch.arange(len(tasks)).repeat(repeats))  # [repeat * task]
    env = make_batched_env(test.env_id, len(many), 1, "cpu", None, **test.env_kwargs)
    curve = BayesOptimalBandit(NUM_PULLS).adaptation_curve(
        env, many, torch.Generator().manual_seed(1)
    )
    trial = curve.trial_return.double().view(repeats, len(tasks))  # [repeat, task]
    mc_se = math.sqrt(float(trial.var(dim=0).mean()) / trial.numel())
    return float(trial.mean()), mc_se


def cell(name: str, cfg: RunConfig, k: int) -> dict:
    e = cfg.eval
    test = Evaluator(cfg.env, ("test",), e.num_tasks, e.seed, env_kwargs=cfg.env_kwargs)
    c = tuned_ucb1_c(cfg, NUM_PULLS)
    bayes = test.curve(BayesOptimalBandit(NUM_PULLS), "test")
    scores = {
        "bayes": EvalResult.from_curve("test", bayes),
        "gittins": test.evaluate(GittinsIndex(NUM_PULLS))["test"],
        "ucb": test.evaluate(UCB1(NUM_PULLS, c=c))["test"],
    }
    # The per-task spread of the Bayes-optimal trial return: the standard error of a 1000-task
    # mean such as the paper's.
    trial = bayes.trial_return.double()
    runs = finished_runs(ROOT / "runs" / "rl2", name)
    cache_ = json.loads(BASELINE_CACHE.read_text()) if BASELINE_CACHE.exists() else {}
    return {
        "k": k,
        "num_tasks": e.num_tasks,
        "seed": e.seed,
        "exact": bayes_optimal_value(k, NUM_PULLS),
        "exact_gittins": policy_value(k, NUM_PULLS, gittins_index(NUM_PULLS)),
        "exact_ucb": policy_value(k, NUM_PULLS, ucb_index(c)),
        "exact_greedy": policy_value(k, NUM_PULLS, greedy_index),
        "c": c,
        "scores": scores,
        "se": float(trial.std()) / math.sqrt(len(trial)),
        "on_tasks": mean_on_tasks(test),
        "rl2": [r["results"]["test"]["trial_return_mean"] for r in runs],
        "best_classic": cache_.get(name),
        "paper": PAPER_BANDIT_RL2[(NUM_PULLS, k)],
    }


def render(cells: list[dict], seconds: float) -> str:
    def score(r) -> str:
        return f"{r.trial_return_mean:.3f} ± {r.trial_return_ci95:.3f}"

    lines = [
        f"## Bernoulli bandits, n = {NUM_PULLS} pulls, p_i ~ U[0, 1]: the Bayes-optimal ceiling",
        "",
        "Generated by `python experiments/bandit_bayes_optimal.py --out "
        "experiments/results/bandit_bayes_optimal.md` (no training: the RL² column reads the "
        f"finished runs in runs/rl2) in {seconds:.0f} s on one thread of a "
        f"{os.cpu_count()}-core {platform.machine()} machine, torch {torch.__version__}.",
        "",
        f"Test tasks: the RL² presets' Evaluator (seed {cells[0]['seed']}, "
        f"{cells[0]['num_tasks']} `test` tasks per k), the tasks of experiments/results/rl2.md. "
        "Scores: mean trial return ± 95% CI over tasks. The classic agents here (and in rl2.md) "
        "also share the env's reward-noise stream (the env is seeded from the first draw of the "
        "Evaluator's generator, the same for every baseline), so their test-task columns move "
        "together; RL²'s evaluation seeds its env differently.",
        "",
        "| k | exact Bayes-optimal (prior expectation) | Bayes-optimal, test tasks | Gittins, "
        "test tasks | UCB1 (tuned c), test tasks | best classic in rl2.md | our RL² (seed mean) "
        "| paper RL² | paper − exact (in se of a 1000-task mean) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for x in cells:
        s = x["scores"]
        best = x["best_classic"]
        best = f"{best[0]} {best[1]:.3f} ± {best[2]:.3f}" if best else "–"
        rl2 = f"{statistics.fmean(x['rl2']):.3f} ({len(x['rl2'])} seeds)" if x["rl2"] else "–"
        excess = x["paper"] - x["exact"]
        lines.append(
            f"| {x['k']} | **{x['exact']:.4f}** | {score(s['bayes'])} | {score(s['gittins'])} | "
            f"{score(s['ucb'])} (c={x['c']:g}) | {best} | {rl2} | {x['paper']} | "
            f"{excess:+.3f} ({excess / x['se']:+.1f} se; se = {x['se']:.3f}) |"
        )
    lines += [
        "",
        "Exact prior expectations (policy evaluation over the posterior states; random ties), "
        f"and the Bayes-optimal agent's expected return on the test tasks themselves (each task "
        f"played {REPEATS} times; ± Monte Carlo se), i.e. how favourable these tasks are.",
        "",
        "| k | Bayes-optimal | Gittins (discount 1 - 1/n) | UCB1 (c) | Greedy (random ties) | "
        "Random | Bayes-optimal on the test tasks (minus the prior expectation) |",
        "|---|---|---|---|---|---|---|",
    ]
    for x in cells:
        lines.append(
            f"| {x['k']} | {x['exact']:.4f} | {x['exact_gittins']:.4f} | {x['exact_ucb']:.4f} "
            f"(c={x['c']:g}) | {x['exact_greedy']:.4f} | {NUM_PULLS / 2:.4f} | "
            f"{x['on_tasks'][0]:.3f} ± {x['on_tasks'][1]:.3f} "
            f"({x['on_tasks'][0] - x['exact']:+.3f}) |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="also write the table to this file")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    cfgs = presets()
    cells = []
    for k in ARMS:
        name = f"rl2_bandit_n{NUM_PULLS}_k{k}"
        cfg = cfgs[name]
        assert int(cfg.env_kwargs["num_arms"]) == k and cfg.algo["episodes_per_trial"] == NUM_PULLS
        cells.append(cell(name, cfg, k))
    text = render(cells, time.perf_counter() - start)
    if args.out:
        args.out.write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
