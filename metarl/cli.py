"""Command line: ``metarl train``, ``metarl eval``, ``metarl list``.

metarl train                                  # the embedded default (a short run)
metarl train experiments/rl2_bandit_n10_k5.toml --set seed=2 --set algo.ppo.learning_rate=1e-3
metarl train --resume runs/rl2__1__1763776000  # continue a run from its checkpoint
metarl eval runs/rl2__1__1763776000 --splits test ood
metarl eval --baseline ucb1 --env metarl/Bandit-v0 --set env_kwargs.num_arms=10 --set trial_episodes=100
metarl list
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from metarl.config import ConfigError, RunConfig, from_dict, load_config, parse_overrides

__all__ = ["main", "resolve_config"]


def _preset_names() -> list[str]:
    return sorted(
        p.name.removesuffix(".toml")
        for p in resources.files("metarl.presets").iterdir()
        if p.name.endswith(".toml")
    )


def resolve_config(config: str | None, overrides: list[str]) -> RunConfig:
    """A RunConfig from a file path or an embedded preset name (``default`` when none)."""
    if config is None or not Path(config).exists():
        name = config or "default"
        if name not in _preset_names():
            raise ConfigError(
                f"config {name!r} is neither a file nor an embedded preset; "
                f"presets: {_preset_names()}"
            )
        import tomllib

        data: dict[str, Any] = tomllib.loads(
            resources.files("metarl.presets").joinpath(f"{name}.toml").read_text()
        )
    else:
        data = load_config(config)
    return from_dict(RunConfig, parse_overrides(data, overrides))


def _cmd_train(args: argparse.Namespace) -> int:
    from metarl.training import load_run_config, train

    if args.resume:
        if args.config:
            raise ConfigError("give either a CONFIG or --resume RUN_DIR, not both")
        cfg = load_run_config(args.resume)
        if args.overrides:
            cfg = from_dict(RunConfig, parse_overrides(_asdict(cfg), args.overrides))
        run_dir = train(cfg, resume=args.resume, progress=not args.quiet)
    else:
        run_dir = train(resolve_config(args.config, args.overrides), progress=not args.quiet)
    sys.stdout.write(f"run directory: {run_dir}\n  tensorboard --logdir {run_dir.parent}\n")
    results = run_dir / "results.json"
    if results.exists():
        _print_results(json.loads(results.read_text()))
        sys.stdout.write(f"  adaptation plot: {run_dir / 'adaptation.png'}\n")
    return 0


def _asdict(cfg: RunConfig) -> dict[str, Any]:
    from metarl.config import to_dict

    return to_dict(cfg)


def _print_results(results: dict[str, Any]) -> None:
    for agent, per_split in results.items():
        for split, r in per_split.items():
            steps = r["axis"] == "gradient_step"
            label = "step" if steps else "ep"
            pts = "  ".join(
                f"{label}{p}: {m:.3g}±{c:.2g}"
                for p, m, c in list(zip(r["points"], r["mean"], r["ci95"], strict=True))[:12]
            )
            # a trial's total return is the RL² score; summed over gradient steps it means nothing
            total = (
                ""
                if steps
                else (
                    f" trial return {r['trial_return_mean']:.4g} ± {r['trial_return_ci95']:.2g} |"
                )
            )
            sys.stdout.write(f"  {agent} [{split}, {r['num_tasks']} tasks]{total} {pts}\n")


def _cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from metarl.evaluation import Evaluator, write_results
    from metarl.runtime import keep_freed_memory, set_torch_threads

    torch.set_num_threads(1)  # classic baselines; a run is evaluated with its own torch_threads
    keep_freed_memory()
    if args.baseline:
        from metarl.baselines import make_baseline

        if not args.env:
            raise ConfigError("--baseline needs --env (a registered family id)")
        opts = parse_overrides({}, args.overrides)
        env_kwargs = opts.pop("env_kwargs", {})
        agent = make_baseline(args.baseline, args.env, env_kwargs=env_kwargs, **opts)
        evaluator = Evaluator(
            args.env, args.splits or ("test",), args.num_tasks or 1000, env_kwargs=env_kwargs
        )
        results = evaluator.evaluate(agent)
        out = Path(args.out or f"runs/eval_{args.baseline}")
        write_results({args.baseline: results}, out, title=f"{args.baseline} on {args.env}")
        _print_results({args.baseline: {s: r.to_dict() for s, r in results.items()}})
        sys.stdout.write(f"  written to {out / 'results.json'}\n")
        return 0
    if not args.run_dir:
        raise ConfigError("metarl eval needs a RUN_DIR, or --baseline NAME --env ID")
    from metarl.checkpoint import load_checkpoint
    from metarl.training import build_algorithm, evaluate_run, load_run_config

    cfg = load_run_config(args.run_dir)
    if args.overrides:
        if not args.out:
            raise ConfigError(
                "metarl eval RUN_DIR --set ... evaluates under changed settings: give --out DIR "
                "for its results, so the run's own results.json stays as trained"
            )
        cfg = from_dict(RunConfig, parse_overrides(_asdict(cfg), args.overrides))
    set_torch_threads(cfg.torch_threads)
    if args.splits:
        cfg.eval.splits = tuple(args.splits)
    if args.num_tasks:
        cfg.eval.num_tasks = args.num_tasks
    algo = build_algorithm(cfg)
    algo.load_state_dict(load_checkpoint(args.run_dir, map_location=cfg.device))
    out = Path(args.out or args.run_dir)
    results = evaluate_run(algo, cfg, out)
    _print_results({cfg.algorithm: {s: r.to_dict() for s, r in results.items()}})
    if args.out:
        sys.stdout.write(f"  written to {out / 'results.json'}\n")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from metarl.algorithms import ALGORITHMS
    from metarl.registry import list_task_envs, make_distribution, task_env_spec

    out = sys.stdout
    out.write("task families:\n")
    for env_id in list_task_envs():
        spec = task_env_spec(env_id)
        dist = make_distribution(env_id)
        out.write(
            f"  {env_id:32s} splits={','.join(dist.splits):16s} "
            f"backends={','.join(spec.backends):22s} {spec.description}\n"
        )
    out.write("algorithms:\n")
    for name in sorted(ALGORITHMS):
        out.write(f"  {name}\n")
    try:
        from metarl.baselines import BASELINES
    except ImportError:
        BASELINES = {}
    if BASELINES:
        out.write("classic baselines (metarl eval --baseline NAME --env ID):\n")
        for name in sorted(BASELINES):
            out.write(f"  {name}\n")
    out.write(f"embedded presets: {', '.join(_preset_names())}\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="metarl", description="Meta-reinforcement learning.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train an algorithm on a task family")
    t.add_argument(
        "config",
        nargs="?",
        help="a .toml/.json config or an embedded preset name (default: 'default')",
    )
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set seed=2 --set algo.hidden_size=128",
    )
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(fn=_cmd_train)

    e = sub.add_parser("eval", help="evaluate a run's checkpoint, or a classic baseline")
    e.add_argument("run_dir", nargs="?", help="run directory to evaluate")
    e.add_argument("--baseline", help="a classic baseline name (see metarl list)")
    e.add_argument("--env", help="task family id (with --baseline)")
    e.add_argument("--splits", nargs="+", help="splits to evaluate (default: the run's)")
    e.add_argument("--num-tasks", type=int, help="tasks per split")
    e.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="baseline options, e.g. --set trial_episodes=100 --set env_kwargs.num_arms=10; "
        "for a run, changed evaluation settings, e.g. --set algo.eval_batch_steps=4000",
    )
    e.add_argument("--out", help="output directory (default for a run: the run directory)")
    e.set_defaults(fn=_cmd_eval)

    ls = sub.add_parser("list", help="list task families, splits, algorithms and baselines")
    ls.set_defaults(fn=_cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except (ConfigError, ValueError, FileNotFoundError) as err:
        sys.stderr.write(f"metarl: error: {err}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
