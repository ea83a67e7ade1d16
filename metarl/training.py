"""The training loop every learner runs under: run directory, logging, checkpoints, evaluation.

``train(cfg)`` creates ``runs/<name>__<seed>__<time>/`` holding

* ``config.json``: the resolved config (every default filled in) and the family's description;
* ``tasks/<split>.json``: the exact evaluation tasks (TaskBatch JSON);
* TensorBoard event files (``tensorboard --logdir runs``);
* ``checkpoint.pt``: weights, optimizers, every generator (task sampler included), written
  atomically every ``checkpoint_every`` iterations, on SIGINT/SIGTERM and at the end;
* ``results.json`` and ``adaptation.png`` from the shared evaluator.

``train(cfg, resume=run_dir)`` continues a run from its checkpoint on the same curve. A loss that
turns NaN or infinite stops the run with :class:`DivergenceError`; the last checkpoint, written
before the divergent step, stays intact.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from metarl.algorithms import Algorithm, get_algorithm
from metarl.checkpoint import load_checkpoint, save_checkpoint
from metarl.config import RunConfig, from_dict, to_dict
from metarl.evaluation import EvalResult, Evaluator, write_results
from metarl.logger import Logger, make_run_dir
from metarl.registry import task_env_spec
from metarl.runtime import keep_freed_memory, set_torch_threads
from metarl.tasks import TaskBatch

__all__ = ["train", "build_algorithm", "evaluate_run", "DivergenceError", "load_run_config"]


class DivergenceError(RuntimeError):
    """Training produced a NaN or infinite loss."""


def build_algorithm(cfg: RunConfig) -> Algorithm:
    """The algorithm of ``cfg`` with its ``[algo]`` table checked against its Config class."""
    task_env_spec(cfg.env)  # unknown env ids fail here, with close matches
    cls = get_algorithm(cfg.algorithm)
    algo_cfg: Any = from_dict(cls.Config, cfg.algo, "algo")
    return cls(
        cfg.env,
        algo_cfg,
        seed=cfg.seed,
        device=cfg.device,
        backend=cfg.backend,
        env_kwargs=cfg.env_kwargs,
    )


def make_evaluator(cfg: RunConfig) -> Evaluator:
    e = cfg.eval
    fixed = None
    if e.tasks_file is not None:
        batch = TaskBatch.from_json(Path(e.tasks_file).read_text())
        fixed = {batch.split: batch}
    return Evaluator(
        cfg.env,
        e.splits,
        e.num_tasks,
        e.seed,
        cfg.device,
        cfg.backend,
        e.chunk_size,
        cfg.env_kwargs,
        fixed_tasks=fixed,
    )


def load_run_config(run_dir: str | Path) -> RunConfig:
    import json

    data = json.loads((Path(run_dir) / "config.json").read_text())["config"]
    return from_dict(RunConfig, data)


@contextmanager
def _stop_on_signals() -> Iterator[dict[str, bool]]:
    """Turn SIGINT/SIGTERM into a flag the loop checks, so it can checkpoint before exiting."""
    flag = {"stop": False}

    def handler(signum: int, frame: Any) -> None:
        flag["stop"] = True

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _check_finite(metrics: dict[str, float], iteration: int, run_dir: Path) -> None:
    bad = {
        k: v
        for k, v in metrics.items()
        if k.startswith(("loss/", "meta_train/")) and not math.isfinite(v)
    }
    if bad:
        raise DivergenceError(
            f"iteration {iteration}: non-finite {bad}. Training stopped; the last good checkpoint "
            f"is {run_dir / 'checkpoint.pt'}. Lower the learning rate or check the env's rewards."
        )


def _log_eval(logger: Logger, results: dict[str, EvalResult], step: int) -> None:
    for split, r in results.items():
        prefix = "gradient_step" if r.axis == "gradient_step" else "episode"
        for point, mean in zip(r.points, r.mean, strict=True):
            logger.writer.add_scalar(f"meta_test/{split}/return_{prefix}_{point}", mean, step)
        logger.writer.add_scalar(f"meta_test/{split}/trial_return", r.trial_return_mean, step)
        if r.success_mean is not None:
            logger.writer.add_scalar(f"meta_test/{split}/success_last", r.success_mean[-1], step)


def evaluate_run(
    algo: Algorithm, cfg: RunConfig, run_dir: Path, logger: Logger | None = None
) -> dict[str, EvalResult]:
    """Final evaluation: adaptation curves on the eval splits to results.json, PNG, TensorBoard."""
    evaluator = make_evaluator(cfg)
    results = evaluator.evaluate(algo, envs_per_task=algo.eval_envs_per_task)
    write_results({cfg.algorithm: results}, run_dir, title=f"{cfg.algorithm} on {cfg.env}")
    if logger is not None:
        _log_eval(logger, results, algo.env_steps)
        for split, r in results.items():  # the curve itself, x = adaptation point
            for point, mean in zip(r.points, r.mean, strict=True):
                logger.writer.add_scalar(f"adaptation/{split}", mean, point)
    return results


def train(cfg: RunConfig, resume: str | Path | None = None, progress: bool = True) -> Path:
    """Train ``cfg.algorithm`` on ``cfg.env`` until ``cfg.total_env_steps``; return the run dir."""
    set_torch_threads(cfg.torch_threads)
    keep_freed_memory()
    with _stop_on_signals() as flag:  # from the start: a signal during setup also exits cleanly
        algo = build_algorithm(cfg)
        evaluator = make_evaluator(cfg)
        if resume is not None:
            run_dir = Path(resume)
            algo.load_state_dict(load_checkpoint(run_dir, map_location=cfg.device))
        else:
            run_dir = make_run_dir(cfg.runs_dir, cfg.name or cfg.algorithm, cfg.seed)
            _write_run_record(cfg, algo, evaluator, run_dir)
        logger = Logger(
            run_dir,
            cfg.total_env_steps,
            algo.env_steps,
            progress,
            description=f"{cfg.algorithm} {cfg.env}",
        )
        try:
            while algo.env_steps < cfg.total_env_steps and not flag["stop"]:
                metrics = algo.train_step()
                _check_finite(metrics, algo.iteration, run_dir)
                logger.log(metrics, algo.env_steps, advanced=int(metrics["env_steps"]))
                if cfg.eval.every and algo.iteration % cfg.eval.every == 0:
                    _log_eval(
                        logger, evaluator.evaluate(algo, algo.eval_envs_per_task), algo.env_steps
                    )
                if algo.iteration % cfg.checkpoint_every == 0:
                    save_checkpoint(algo.state_dict(), run_dir)
            save_checkpoint(algo.state_dict(), run_dir)
            if not flag["stop"]:
                evaluate_run(algo, cfg, run_dir, logger)
        finally:
            logger.close()
    return run_dir


def _write_run_record(cfg: RunConfig, algo: Algorithm, evaluator: Evaluator, run_dir: Path) -> None:
    """Resolved config and the exact evaluation tasks, so the run says what it trained and tested on."""
    import json

    record = {
        "config": to_dict(cfg),
        "algo_resolved": to_dict(algo.config),
        "family": algo.distribution.describe(),
        "train_tasks": {"split": "train", "generator_seed": cfg.seed},
    }
    (run_dir / "config.json").write_text(json.dumps(record, indent=2))
    (run_dir / "tasks").mkdir(exist_ok=True)
    for split in evaluator.splits:
        (run_dir / "tasks" / f"{split}.json").write_text(evaluator.tasks(split).to_json())
