"""Build the MAML 2D-navigation table from the runs of ``experiments/maml_point_nav_runs.sh``.

    python experiments/maml_point_nav_table.py > experiments/results/maml_point_nav.md

Reads ``experiments/results/maml_point_nav_runs.tsv`` (preset, seed, wall-clock, load, run dir)
and each run's ``results.json``. Several seeds of a preset are pooled: the mean over the
(seed, test goal) pairs with its 95% CI (per-seed means and CIs give the pooled variance), and
the CI of the mean over seeds (Student t). Prints markdown rows; the prose around them lives in
``experiments/results/maml_point_nav.md``.

Further tables hold the runs re-evaluated under other settings, for the runs that have them
(``TABLES``): the paper's own test protocol (``bash experiments/maml_point_nav_runs.sh
paper_protocol``) and the step size halved after every step (``... halving``).
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG = ROOT / "experiments" / "results" / "maml_point_nav_runs.tsv"
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776}
PAPER = {"MAML (paper, Table 4)": [-40.41, -11.68, -3.33, -3.23]}
#: (heading, results file in each run directory) of each table, in print order
TABLES = [
    (
        "Whole trajectories (40 per point), the preset's step sizes (x1, x0.5, x0.5):",
        "results.json",
    ),
    (
        "The paper's test protocol (whole episodes until 4000 environment steps per point, "
        "4 environments), the preset's step sizes:",
        "eval_paper_protocol/results.json",
    ),
    (
        "Whole trajectories, the step size halved after every step (x1, x0.5, x0.25):",
        "eval_halving/results.json",
    ),
]


def pooled(results: list[dict]) -> tuple[list[float], list[float], list[float]]:
    """Per point: pooled mean, 95% CI over (seed, task) pairs, 95% CI over seed means."""
    k = len(results[0]["mean"])
    means, ci_pairs, ci_seeds = [], [], []
    for j in range(k):
        ms = [r["mean"][j] for r in results]
        ns = [r["num_tasks"] for r in results]
        # The evaluator's CI over n >= 31 tasks is 1.96 * sd / sqrt(n): recover each sd.
        sds = [
            (r["ci95"][j] or 0.0) * math.sqrt(n) / 1.96 for r, n in zip(results, ns, strict=True)
        ]
        total = sum(ns)
        m = sum(mi * n for mi, n in zip(ms, ns, strict=True)) / total
        ss = sum((n - 1) * sd**2 + n * (mi - m) ** 2 for mi, sd, n in zip(ms, sds, ns, strict=True))
        means.append(m)
        ci_pairs.append(1.96 * math.sqrt(ss / (total - 1) / total))
        if len(ms) > 1:
            sd_seed = math.sqrt(sum((x - m) ** 2 for x in ms) / (len(ms) - 1))
            ci_seeds.append(T975[len(ms) - 1] * sd_seed / math.sqrt(len(ms)))
        else:
            ci_seeds.append(float("nan"))
    return means, ci_pairs, ci_seeds


def table(rows: dict[str, list[dict]], results: str) -> None:
    """One markdown table: a row per preset from each run's ``results`` file (runs without it are
    left out)."""
    out = sys.stdout
    out.write(
        "| preset | seeds | "
        + " | ".join(f"step {j}" for j in range(4))
        + " | wall-clock per run (s) | load avg |\n"
    )
    out.write("|---|---|" + "---|" * 4 + "---|---|\n")
    for name, vals in PAPER.items():
        out.write(f"| {name} | | " + " | ".join(f"{v:.2f}" for v in vals) + " | | |\n")
    for preset, recs in rows.items():
        latest = {}
        for r in recs:  # the last run of each seed counts
            latest[r["seed"]] = r
        recs = [r for r in latest.values() if (ROOT / r["run_dir"] / results).exists()]
        if not recs:
            continue
        for r in recs:
            res = json.loads((ROOT / r["run_dir"] / results).read_text())
            (agent,) = res
            r["result"] = res[agent]["test"]
        means, ci_p, ci_s = pooled([r["result"] for r in recs])
        cells = []
        for j in range(4):
            if j >= len(means):
                cells.append("")
                continue
            seed_ci = "" if math.isnan(ci_s[j]) else f" (seeds ±{ci_s[j]:.2f})"
            cells.append(f"{means[j]:.2f} ± {ci_p[j]:.2f}{seed_ci}")
        walls = ", ".join(f"{float(r['wall_s']):.0f}" for r in recs)
        loads = ", ".join(f"{r['load_before']}-{r['load_after']}" for r in recs)
        seeds = ",".join(r["seed"] for r in recs)
        out.write(f"| `{preset}` | {seeds} | " + " | ".join(cells) + f" | {walls} | {loads} |\n")


def main() -> None:
    rows: dict[str, list[dict]] = defaultdict(list)
    with LOG.open() as f:
        for rec in csv.DictReader(f, delimiter="\t"):
            rows[rec["preset"]].append(rec)
    for i, (title, results) in enumerate(TABLES):
        sys.stdout.write(("\n" if i else "") + title + "\n\n")
        table(rows, results)


if __name__ == "__main__":
    main()
