"""Build the MAML 2D-navigation tables from the runs of ``experiments/maml_point_nav_runs.sh``.

    python experiments/maml_point_nav_table.py     # prints the markdown tables

``experiments/results/maml_point_nav_runs.tsv`` lists every run (preset, seed, wall-clock,
load, run directory). The first time this script finds a listed run's directory it copies what
the tables need from each of its results files (per point: the mean over test goals, its 95% CI
and the number of goals) into ``experiments/results/maml_point_nav_runs.json``, and it builds
the tables from that file. Rows therefore outlive their run directories (``runs/`` is not
kept). The first seven sessions' rows predate the file; their directories were gone, so they
are kept there as the pooled cells the tables printed then (``pooled``), and stay as they were.

Several seeds of a preset are pooled: the mean over the (seed, test goal) pairs with its 95%
CI (per-seed means and CIs give the pooled variance), and the CI of the mean over seeds
(Student t). Prints markdown; the prose around it lives in
``experiments/results/maml_point_nav.md``.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG = ROOT / "experiments" / "results" / "maml_point_nav_runs.tsv"
SUMMARIES = ROOT / "experiments" / "results" / "maml_point_nav_runs.json"
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365}
PAPER = {"MAML (paper, Table 4)": [-40.41, -11.68, -3.33, -3.23]}
#: (heading, results file in each run directory) of each table, in print order
TABLES = [
    (
        "Whole trajectories (40 per point), the preset's step sizes (x1, x0.5, x0.5):",
        "results.json",
    ),
    (
        "**The paper's test protocol** (its sampler: 40 environments stepping together until "
        "the episodes they completed hold 4000 steps, the unfinished ones dropped), the "
        "preset's step sizes:",
        "eval_lockstep/results.json",
    ),
    (
        "The paper's test protocol on **the paper's own 40 test goals** "
        "(`experiments/point_nav_paper_test_goals.json`), the preset's step sizes:",
        "eval_paper_goals/results.json",
    ),
    (
        "Whole episodes until 4000 environment steps, 4 environments each finishing its share "
        "(the sixth session's reading of the paper's protocol), the preset's step sizes:",
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


def summarize(log: list[dict], store: dict) -> None:
    """Copy into ``store["runs"]`` the results of every listed run whose directory exists."""
    runs = store.setdefault("runs", {})
    for rec in log:
        run_dir = ROOT / rec["run_dir"]
        if not run_dir.is_dir():
            continue
        entry = runs.setdefault(rec["run_dir"], {"results": {}})
        entry.update({k: rec[k] for k in ("preset", "seed", "wall_s", "load_before", "load_after")})
        for _, results in TABLES:
            path = run_dir / results
            if path.exists():
                res = json.loads(path.read_text())
                (agent,) = res
                test = res[agent]["test"]
                entry["results"][results] = {
                    k: test[k] for k in ("mean", "ci95", "num_tasks", "points")
                }


def row(preset: str, recs: list[dict], results: str) -> str | None:
    """The markdown row of ``preset`` from its summarized runs (the last run of each seed)."""
    latest = {r["seed"]: r for r in recs if results in r["results"]}
    recs = sorted(latest.values(), key=lambda r: int(r["seed"]))
    if not recs:
        return None
    means, ci_p, ci_s = pooled([r["results"][results] for r in recs])
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
    return f"| `{preset}` | {seeds} | " + " | ".join(cells) + f" | {walls} | {loads} |"


def table(presets: list[str], store: dict, results: str) -> str:
    """One markdown table: a row per preset with results in ``results`` (summarized runs first,
    else the pooled row kept from before the summaries)."""
    lines = [
        "| preset | seeds | "
        + " | ".join(f"step {j}" for j in range(4))
        + " | wall-clock per run (s) | load avg |",
        "|---|---|" + "---|" * 4 + "---|---|",
    ]
    for name, vals in PAPER.items():
        lines.append(f"| {name} | | " + " | ".join(f"{v:.2f}" for v in vals) + " | | |")
    kept = store.get("pooled", {}).get(results, {})
    for preset in presets:
        recs = [r for r in store.get("runs", {}).values() if r["preset"] == preset]
        line = row(preset, recs, results)
        if line is None and preset in kept:
            line = kept[preset]
        if line is not None:
            lines.append(line)
    return "\n".join(lines) + "\n"


def main() -> None:
    with LOG.open() as f:
        log = list(csv.DictReader(f, delimiter="\t"))
    store = json.loads(SUMMARIES.read_text()) if SUMMARIES.exists() else {}
    summarize(log, store)
    SUMMARIES.write_text(json.dumps(store, indent=1, sort_keys=True) + "\n")
    presets = list(dict.fromkeys(rec["preset"] for rec in log))
    out = []
    for title, results in TABLES:
        out.append(title + "\n\n" + table(presets, store, results))
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
