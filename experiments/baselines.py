"""Regenerate experiments/results/baselines.md: classic baselines next to RL²'s Tables 1 and 2.

Duan et al. 2016 (RL², arXiv:1611.02779) print their learned agent next to classic bandit and
tabular-MDP algorithms (ANCHORS.md 1 and 2). This script scores metarl's versions of those
algorithms (metarl/baselines) with the shared Evaluator on held-out ``test`` tasks and writes a
table of ours against the paper's numbers, cell by cell, with 95% confidence intervals.

Protocol, following the paper: the Bayesian agents (Thompson sampling, Gittins) get the true
prior; UCB1's ``c`` and eps-greedy's ``epsilon`` are tuned per setting ("for the other methods, we
tune the hyperparameters"), here on a separate set of ``train`` tasks so the reported ``test``
score carries no selection bias. Every agent in a setting sees the same test tasks.

    python experiments/baselines.py                 # the committed table (a few minutes)
    python experiments/baselines.py --quick --out /tmp/baselines.md   # smoke run, seconds
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

import envs  # noqa: F401  (registers the task families)
from metarl.baselines import (
    PSRL,
    UCB1,
    EpsilonGreedyBandit,
    GittinsIndex,
    GreedyBandit,
    GreedyMDP,
    RandomBandit,
    RandomMDP,
    ThompsonSampling,
)
from metarl.evaluation import Adaptive, Evaluator

BANDIT_ID = "metarl/Bandit-v0"
MDP_ID = "metarl/TabularMDP-v0"
PAPER_TASKS = 1000  # the paper averages over 1000 bandits / MDPs

# RL² Table 1 (ANCHORS.md 1): (n, k) -> paper numbers.
PAPER_BANDITS: dict[tuple[int, int], dict[str, float]] = {
    (10, 5): dict(Random=5.0, Gittins=6.6, TS=5.7, OTS=6.5, UCB1=6.7, eps=6.6, Greedy=6.6, RL2=6.7),
    (10, 10): dict(
        Random=5.0, Gittins=6.6, TS=5.5, OTS=6.2, UCB1=6.7, eps=6.6, Greedy=6.6, RL2=6.7
    ),
    (10, 50): dict(
        Random=5.1, Gittins=6.5, TS=5.2, OTS=5.5, UCB1=6.6, eps=6.5, Greedy=6.5, RL2=6.8
    ),
    (100, 5): dict(
        Random=49.9, Gittins=78.3, TS=74.7, OTS=77.9, UCB1=78.0, eps=75.4, Greedy=74.8, RL2=78.7
    ),
    (100, 10): dict(
        Random=49.9, Gittins=82.8, TS=76.7, OTS=81.4, UCB1=82.4, eps=77.4, Greedy=77.1, RL2=83.5
    ),
    (100, 50): dict(
        Random=49.8, Gittins=85.2, TS=64.5, OTS=67.7, UCB1=84.3, eps=78.3, Greedy=78.0, RL2=84.9
    ),
    (500, 5): dict(
        Random=249.8,
        Gittins=405.8,
        TS=402.0,
        OTS=406.7,
        UCB1=405.8,
        eps=388.2,
        Greedy=380.6,
        RL2=401.6,
    ),
    (500, 10): dict(
        Random=249.0,
        Gittins=437.8,
        TS=429.5,
        OTS=438.9,
        UCB1=437.1,
        eps=408.0,
        Greedy=395.0,
        RL2=432.5,
    ),
    (500, 50): dict(
        Random=249.6,
        Gittins=463.7,
        TS=427.2,
        OTS=437.6,
        UCB1=457.6,
        eps=413.6,
        Greedy=402.8,
        RL2=438.9,
    ),
}
# RL² Table 2 (ANCHORS.md 2): n -> paper numbers.
PAPER_MDPS: dict[int, dict[str, float]] = {
    10: dict(
        Random=100.1,
        PSRL=138.1,
        OPSRL=144.1,
        UCRL2=146.6,
        BEB=150.2,
        eps=132.8,
        Greedy=134.8,
        RL2=156.2,
    ),
    25: dict(
        Random=250.2,
        PSRL=408.8,
        OPSRL=425.2,
        UCRL2=424.1,
        BEB=427.8,
        eps=377.3,
        Greedy=368.8,
        RL2=445.7,
    ),
    50: dict(
        Random=499.7,
        PSRL=904.4,
        OPSRL=930.7,
        UCRL2=918.9,
        BEB=917.8,
        eps=823.3,
        Greedy=769.3,
        RL2=936.1,
    ),
    75: dict(
        Random=749.9,
        PSRL=1417.1,
        OPSRL=1449.2,
        UCRL2=1427.6,
        BEB=1422.6,
        eps=1293.9,
        Greedy=1172.9,
        RL2=1428.8,
    ),
    100: dict(
        Random=999.4,
        PSRL=1939.5,
        OPSRL=1973.9,
        UCRL2=1942.1,
        BEB=1935.1,
        eps=1778.2,
        Greedy=1578.5,
        RL2=1913.7,
    ),
}

UCB_C_GRID = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0)
EPSILON_GRID = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)


@dataclass
class Score:
    """Trial return over tasks: mean, 95% CI half-width, per-task standard deviation."""

    mean: float
    ci: float
    std: float
    num_tasks: int

    def agrees(self, paper: float) -> bool:
        """Whether ``paper`` is within the 95% interval of the difference of the two estimates.

        The paper's number is itself a mean over 1000 random tasks, so it carries sampling noise
        of about ``std / sqrt(1000)`` (from our per-task spread); rounding to one decimal adds up
        to 0.05. A paper number outside ``ours ± 1.96 * sqrt(se_ours^2 + se_paper^2) + 0.05`` is a
        disagreement.
        """
        se = math.hypot(self.std / math.sqrt(self.num_tasks), self.std / math.sqrt(PAPER_TASKS))
        return abs(self.mean - paper) <= 1.96 * se + 0.05

    def cell(self, paper: float | None = None, digits: int = 2) -> str:
        text = f"{self.mean:.{digits}f} ± {self.ci:.{digits}f}"
        if paper is None:
            return text
        return f"{text} ({paper:g}) {'✓' if self.agrees(paper) else '✗'}"


def score(evaluator: Evaluator, agent: Adaptive, split: str) -> Score:
    trial = evaluator.curve(agent, split).trial_return.double()  # [task]
    n = trial.shape[0]
    std = float(trial.std())
    return Score(float(trial.mean()), 1.96 * std / math.sqrt(n), std, n)


def tune(
    make: Callable[[float], Adaptive], grid: Sequence[float], evaluator: Evaluator
) -> tuple[float, dict[float, float]]:
    """The grid value with the best mean trial return on the evaluator's ``train`` tasks."""
    means = {v: score(evaluator, make(v), "train").mean for v in grid}
    return max(means, key=lambda v: means[v]), means


# --- Table 1: bandits ---------------------------------------------------------------------------
def run_bandits(args: argparse.Namespace) -> dict[tuple[int, int], dict[str, object]]:
    out: dict[tuple[int, int], dict[str, object]] = {}
    for n, k in args.bandit_cells:
        kw = {"num_arms": k}
        test = Evaluator(
            BANDIT_ID,
            ("test",),
            args.num_tasks,
            args.seed,
            chunk_size=args.chunk_size,
            env_kwargs=kw,
        )
        train = Evaluator(
            BANDIT_ID,
            ("train",),
            args.tune_tasks,
            args.seed,
            chunk_size=args.chunk_size,
            env_kwargs=kw,
        )
        c, ucb_curve = tune(lambda v, n=n: UCB1(n, c=v), UCB_C_GRID, train)
        eps_first, eps_curve = tune(
            lambda v, n=n: EpsilonGreedyBandit(n, v, "first"), EPSILON_GRID, train
        )
        eps_random, _ = tune(
            lambda v, n=n: EpsilonGreedyBandit(n, v, "random"), EPSILON_GRID, train
        )
        gittins = GittinsIndex(n)  # discount 1 - 1/n
        agents: dict[str, Adaptive] = {
            "Random": RandomBandit(n),
            "Gittins": gittins,
            "TS": ThompsonSampling(n),
            "UCB1": UCB1(n, c=c),
            "eps": EpsilonGreedyBandit(n, eps_first, "first"),
            "Greedy": GreedyBandit(n, "first"),
            "eps/random ties": EpsilonGreedyBandit(n, eps_random, "random"),
            "Greedy/random ties": GreedyBandit(n, "random"),
        }
        cell: dict[str, object] = {
            name: score(test, agent, "test") for name, agent in agents.items()
        }
        cell["hyper"] = {
            "c": c,
            "eps": eps_first,
            "eps/random ties": eps_random,
            "discount": gittins.discount,
        }
        cell["tuning"] = {"UCB1": ucb_curve, "eps": eps_curve}
        out[(n, k)] = cell
    return out


# --- Table 2: tabular MDPs ----------------------------------------------------------------------
def run_mdps(args: argparse.Namespace) -> dict[int, dict[str, Score]]:
    out: dict[int, dict[str, Score]] = {}
    for n in args.mdp_trials:
        test = Evaluator(
            MDP_ID, ("test",), args.mdp_num_tasks, args.seed, chunk_size=args.chunk_size
        )
        agents: dict[str, Adaptive] = {
            "Random": RandomMDP(n),
            "PSRL, prior mean 0": PSRL(n, reward_prior_mean=0.0),
            "PSRL, prior mean 1": PSRL(n, reward_prior_mean=1.0),
            "Greedy, empirical": GreedyMDP(
                n, reward_prior_mean=0.0, reward_prior_std=math.inf, transitions="empirical"
            ),
            "Greedy, Bayes mean": GreedyMDP(n, reward_prior_mean=1.0, transitions="posterior"),
        }
        out[n] = {name: score(test, agent, "test") for name, agent in agents.items()}
    return out


# --- the markdown -------------------------------------------------------------------------------
def render(args: argparse.Namespace, bandits: dict, mdps: dict, wall: dict[str, float]) -> str:
    lines = [
        "# Classic baselines vs the RL² paper (Tables 1 and 2)",
        "",
        "Generated by `experiments/baselines.py`; do not edit by hand. Regenerate with",
        "",
        "```",
        f"python experiments/baselines.py{args.cli_tail}",
        "```",
        "",
        f"- Seed {args.seed} (Evaluator: test tasks from seed {args.seed}+1, tuning tasks from the "
        f"`train` split, seed {args.seed}); {args.num_tasks} test bandits per cell, "
        f"{args.mdp_num_tasks} test MDPs per row, {args.tune_tasks} train bandits for tuning.",
        f"- Machine: {args.machine}; torch {torch.__version__}, 1 thread.",
        f"- Wall-clock: {wall['total']:.0f} s in all (bandits {wall['bandits']:.0f} s, "
        f"MDPs {wall['mdps']:.0f} s).",
        "- Each cell: our mean trial return ± 95% CI over test tasks, then (the paper's number) and",
        "  ✓ if they agree: the paper's number lies within 1.96·sqrt(se_ours² + se_paper²) + 0.05",
        "  of ours, where se_paper = (our per-task std)/sqrt(1000) is the sampling noise of the",
        "  paper's own 1000-task average and 0.05 its rounding. ✗ marks a disagreement.",
        "",
    ]
    if bandits:
        lines += _bandit_section(bandits)
    if mdps:
        lines += _mdp_section(mdps)
    lines += NOTES
    return "\n".join(lines) + "\n"


def _bandit_section(bandits: dict) -> list[str]:
    cols = ["Random", "Gittins", "TS", "UCB1", "eps", "Greedy"]
    heads = [
        "Random",
        "Gittins (discount 1 - 1/n)",
        "TS",
        "UCB1 (tuned c)",
        "eps-greedy (tuned eps, first-index ties)",
        "Greedy (first-index ties)",
    ]
    lines = [
        "## Table 1: Bernoulli bandits, total reward of n pulls, k arms, p_i ~ U[0, 1]",
        "",
        "| n, k | " + " | ".join(heads) + " |",
        "|---|" + "---|" * len(heads),
    ]
    for (n, k), cell in bandits.items():
        paper = PAPER_BANDITS[(n, k)]
        digits = 2 if n <= 10 else 1
        lines.append(
            f"| {n}, {k} | " + " | ".join(cell[c].cell(paper[c], digits) for c in cols) + " |"
        )
    lines += [
        "",
        _tally(
            {
                c: [cell[c].agrees(PAPER_BANDITS[key][c]) for key, cell in bandits.items()]
                for c in cols
            },
            dict(zip(cols, heads, strict=True)),
        ),
        "",
    ]
    lines += [
        "Hyperparameters (tuned on train tasks for UCB1 over c in "
        f"{list(UCB_C_GRID)} and eps-greedy over eps in {list(EPSILON_GRID)}; "
        "the Gittins discount is not tuned), and the same greedy agents with ties broken at "
        "random:",
        "",
        "| n, k | UCB1 c | eps (first-index ties) | Gittins discount | "
        "Greedy, random ties | eps-greedy, random ties (eps) |",
        "|---|---|---|---|---|---|",
    ]
    for (n, k), cell in bandits.items():
        hyper = cell["hyper"]
        paper = PAPER_BANDITS[(n, k)]
        digits = 2 if n <= 10 else 1
        lines.append(
            f"| {n}, {k} | {hyper['c']:g} | {hyper['eps']:g} | {hyper['discount']:.4g} | "
            f"{cell['Greedy/random ties'].cell(paper['Greedy'], digits)} | "
            f"{cell['eps/random ties'].cell(paper['eps'], digits)} "
            f"({hyper['eps/random ties']:g}) |"
        )
    lines += [
        "",
        "Tuning curves: mean trial return on the train bandits at each grid value "
        "(the chosen value in bold).",
        "",
    ]
    for name, grid, key in (
        ("UCB1 c", UCB_C_GRID, "UCB1"),
        ("eps (first-index ties)", EPSILON_GRID, "eps"),
    ):
        lines += [
            f"| n, k | {name} = " + " | ".join(f"{v:g}" for v in grid) + " |",
            "|---|" + "---|" * len(grid),
        ]
        for (n, k), cell in bandits.items():
            curve = cell["tuning"][key]
            best = max(curve, key=lambda v, curve=curve: curve[v])
            fmt = "{:.2f}" if n <= 10 else "{:.1f}"
            lines.append(
                f"| {n}, {k} | "
                + " | ".join(
                    (f"**{fmt.format(curve[v])}**" if v == best else fmt.format(curve[v]))
                    for v in grid
                )
                + " |"
            )
        lines.append("")
    return lines


def _mdp_section(mdps: dict) -> list[str]:
    cols = [
        ("Random", "Random"),
        ("PSRL, prior mean 0", "PSRL"),
        ("PSRL, prior mean 1", "PSRL"),
        ("Greedy, empirical", "Greedy"),
        ("Greedy, Bayes mean", "Greedy"),
    ]
    heads = [
        "Random",
        "PSRL, reward prior N(0, 1)",
        "PSRL, reward prior N(1, 1)",
        "Greedy, empirical model",
        "Greedy, Bayes mean, prior N(1, 1)",
    ]
    lines = [
        "## Table 2: random MDPs (10 states, 5 actions, 10-step episodes), total reward of n "
        "episodes",
        "",
        "PSRL: Normal rewards with known unit noise variance and prior N(m, 1) on each mean "
        'reward, m = 0 (the paper\'s PSRL, ANCHORS.md 2 "known quirk") or m = 1 (the true '
        "prior); Dirichlet(1) prior on transitions; one posterior sample per episode. Greedy, "
        "empirical model: sample-mean rewards (0 for an unvisited pair) and transition "
        "frequencies (uniform for an unvisited pair). Greedy, Bayes mean: the posterior-mean MDP "
        "under the true prior (N(1, 1) rewards, Dirichlet(1) transitions). All replan at the "
        "start of every episode by backward induction over the 10-step horizon.",
        "",
        "| n | " + " | ".join(heads) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for n, row in mdps.items():
        paper = PAPER_MDPS[n]
        lines.append(
            f"| {n} | " + " | ".join(row[name].cell(paper[key], 1) for name, key in cols) + " |"
        )
    tally = {
        name: [row[name].agrees(PAPER_MDPS[n][key]) for n, row in mdps.items()]
        for name, key in cols
    }
    return lines + [
        "",
        _tally(tally, {name: h for (name, _), h in zip(cols, heads, strict=True)}),
        "",
    ]


def _tally(agree: dict[str, list[bool]], heads: dict[str, str]) -> str:
    """One line: how many cells of each column agree with the paper."""
    parts = [f"{heads[c]} {sum(a)}/{len(a)}" for c, a in agree.items()]
    return (
        "Cells that agree with the paper: " + ", ".join(parts) + ". (At a 95% level about "
        "1 in 20 cells whose true values are equal is marked ✗ by chance.)"
    )


NOTES = [
    "## Notes",
    "",
    "**What agrees.** The columns that pin the environments agree everywhere: Random (9/9",
    "bandit cells, 5/5 MDP rows), Thompson sampling (9/9; no hyperparameter, true prior) and",
    "PSRL with the paper's reward prior N(0, 1) (5/5). Greedy with the paper's apparent",
    "tie-break (below) agrees in 8/9 cells, UCB1 in 7/9, and the empirical greedy MDP agent in",
    "5/5 rows.",
    "",
    "**The k = 10 cells.** All ✗ in Table 1 but one are in the cells (100, 10) and (500, 10), and",
    "there every learning agent scores above the paper: TS by 0.5 and 2.8 (inside its CI),",
    "Greedy by 0.6 and 5.3, UCB1 by 1.2 and 3.9, Gittins by 1.0 and 5.5, eps-greedy by 0.3",
    "and 3.5. The same code agrees in the k = 5 and k = 50 cells, and nothing in the",
    "environment depends on k other than the number of columns of `probs` (the tests check the",
    "U[0, 1] prior and the Bernoulli rates). A shift shared by every method of one cell is what",
    "the paper's own task sample produces if all its methods were scored on the same 1000",
    "bandits: a good agent's trial return is about n * max_i p_i, whose 1000-task mean has a",
    "standard error of 0.26 (n = 100) and 1.3 (n = 500) at k = 10 (sd of the max of 10",
    "uniforms: 0.083), so the paper's k = 10 rows sit about 3 of those below ours (one draw, if",
    "the two n share their bandits). The",
    "✓/✗ test treats the paper's columns as independent samples, so one such draw shows up as",
    "several ✗ at once. We read these ✗ as the paper's sampling noise, not an environment bug.",
    "",
    "**Greedy and eps-greedy tie-breaking.** The paper's Greedy and eps-greedy columns are",
    "reproduced only when ties are broken at the lowest index (`numpy.argmax`); the paper does",
    "not say so, we infer it from its numbers. With the Beta(1, 1) pseudo-count an arm with one",
    "success and one failure is back at mean 1/2 and ties every untried arm: lowest-index ties",
    "keep pulling it, random ties move on to a fresh arm. Random ties score 1 to 8 more at",
    "n >= 100 (second table) and disagree with the paper in 6 (Greedy) and 5 (eps-greedy) of 9",
    "cells.",
    "",
    "**Tuned baselines.** UCB1's c and eps-greedy's eps are tuned per cell on 2000 train",
    "bandits, as the paper tunes them (it gives neither its grids nor its choices). Where our",
    "tuned score is above the paper's by more than its CI (UCB1 at k = 10, eps-greedy at",
    "(500, 10) and (500, 50)), the tuning curves show the gap is about one step of our grid:",
    "UCB1 with c = 0.15 instead of 0.2 scores 437.1 on the train bandits at (500, 10), the",
    "paper's number, and eps = 0.02 or 0.1 instead of 0.05 is within 1.5 of the paper at",
    "(500, 50); a coarser grid in the paper would explain the gap. The eps-greedy",
    "agent is the paper's: the best eps with first-index ties (0 or 0.005 at n = 10, where it",
    "is Greedy).",
    "",
    "**Gittins.** The discounted Gittins index of each arm's Beta posterior with discount",
    "1 - 1/n (an effective horizon of the trial length, not tuned), computed once per",
    "(discount, n) by calibration against a known arm: backward induction over every posterior",
    "state for each of 1001 retirement rewards, the index interpolated where retiring and",
    "pulling tie (`metarl.baselines.gittins_indices`; it reproduces the published indices",
    "0.7029 and 0.8699 of Beta(1, 1) at discounts 0.9 and 0.99, and a brute-force bisection in",
    "the tests). It is Bayes-optimal for the discounted problem, not for the n-pull trial, so",
    "other discounts score differently (at (500, 10), 0.95 scores about 435); the paper does",
    "not give its discount. Its two ✗ are the k = 10 cells above; it agrees in the other 7.",
    "",
    "**MDPs.** PSRL with the paper's prior mean 0 reproduces the paper in every row; with the",
    "true prior mean 1 it is about 4 lower at n = 10 and 25 and level or above from n = 50 (the",
    '"known quirk" of ANCHORS.md 2). The paper does not define its Greedy; the certainty-equivalence',
    "agent on the empirical model (sample-mean rewards, 0 for an unvisited pair; transition",
    "frequencies, uniform for an unvisited pair) matches it in all five rows. With the true",
    "prior (posterior-mean MDP, N(1, 1) rewards, Dirichlet(1) transitions) greedy is far",
    "better: about 155 at n = 10 (ANCHORS.md 2 quotes about 150), above every other column of",
    "the paper except RL² at n <= 25; it is not the paper's agent, so its ✗ are expected.",
    "Variants tried during development move away from the paper: the posterior-mean MDP under",
    "a N(0, 1) reward prior with Dirichlet-mean transitions scored 137.6, 367.5, 756.4, 1147.9",
    "and 1540.8 (n = 10 to 100, 5000 MDPs), off at 4 of 5 rows; replanning at every step or",
    "first-index ties were further off.",
]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=10_000, help="Evaluator seed (test/train tasks)")
    p.add_argument("--num-tasks", type=int, default=5_000, help="test bandits per (n, k) cell")
    p.add_argument("--mdp-num-tasks", type=int, default=3_000, help="test MDPs per row")
    p.add_argument("--tune-tasks", type=int, default=2_000, help="train bandits for tuning")
    p.add_argument("--chunk-size", type=int, default=5_000, help="tasks per batched env")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "baselines.md")
    p.add_argument("--machine", default="2-core shared CPU (no GPU)", help="recorded in the md")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 cells, few tasks")
    p.add_argument("--skip-bandits", action="store_true")
    p.add_argument("--skip-mdps", action="store_true")
    args = p.parse_args(argv)
    args.cli_tail = "" if argv is None or not list(argv) else " " + " ".join(argv)
    args.bandit_cells = list(PAPER_BANDITS)
    args.mdp_trials = list(PAPER_MDPS)
    if args.quick:
        args.bandit_cells, args.mdp_trials = [(10, 5), (100, 10)], [10]
        args.num_tasks, args.mdp_num_tasks, args.tune_tasks = 200, 100, 100
    return args


def main(argv: Sequence[str] | None = None) -> Path:
    torch.set_num_threads(1)
    args = parse_args(argv)
    wall = {"bandits": 0.0, "mdps": 0.0}
    start = time.perf_counter()
    bandits = {} if args.skip_bandits else run_bandits(args)
    wall["bandits"] = time.perf_counter() - start
    mdps = {} if args.skip_mdps else run_mdps(args)
    wall["total"] = time.perf_counter() - start
    wall["mdps"] = wall["total"] - wall["bandits"]
    args.machine = f"{args.machine}, {platform.processor() or platform.machine()}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(args, bandits, mdps, wall))
    return args.out


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
