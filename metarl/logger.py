"""Run logging: TensorBoard event files, a console progress bar, and the run directory.

Scalar keys follow one taxonomy (``meta_train/...``, ``meta_test/...``, ``loss/...``,
``optim/...``, ``time/...``) and the step axis is always environment steps, so curves of runs with
different batch sizes line up.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

__all__ = ["Logger", "make_run_dir"]


def make_run_dir(runs_dir: str | Path, name: str, seed: int) -> Path:
    """``runs/<name>__<seed>__<unix time>``, created (a suffix avoids clashes)."""
    base = Path(runs_dir) / f"{name}__{seed}__{int(time.time())}"
    path, k = base, 1
    while path.exists():
        path = base.with_name(f"{base.name}_{k}")
        k += 1
    path.mkdir(parents=True)
    return path


class Logger:
    """Writes scalars to TensorBoard and shows progress (return, steps/s) on the console."""

    def __init__(
        self,
        run_dir: str | Path,
        total_steps: int,
        initial_steps: int = 0,
        progress: bool = True,
        description: str = "",
    ):
        self.run_dir = Path(run_dir)
        self.writer = SummaryWriter(str(self.run_dir), purge_step=initial_steps or None)
        self.bar = tqdm(
            total=total_steps,
            initial=initial_steps,
            unit="step",
            unit_scale=True,
            dynamic_ncols=True,
            disable=not progress,
            desc=description,
        )
        self._last_time = time.perf_counter()

    def log(self, metrics: Mapping[str, float], step: int, advanced: int = 0) -> None:
        """Write every scalar at env step ``step``; move the bar by ``advanced`` steps."""
        now = time.perf_counter()
        if advanced:
            sps = advanced / max(now - self._last_time, 1e-9)
            metrics = {**metrics, "time/sps": sps}
            self._last_time = now
        for key, value in metrics.items():
            if key == "env_steps" or not isinstance(value, int | float) or math.isnan(value):
                continue
            self.writer.add_scalar(key, value, step)
        if advanced:
            self.bar.update(advanced)
            shown = {
                k.split("/")[-1]: v
                for k, v in metrics.items()
                if k in ("meta_train/return", "meta_train/trial_return", "time/sps")
            }
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()})

    def write_json(self, name: str, data: Any) -> Path:
        path = self.run_dir / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(path)
        return path

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
        self.bar.close()
