"""Atomic checkpoints.

A checkpoint is written to a temporary file in the same directory, flushed to disk, then renamed
over ``checkpoint.pt``: a run killed at any moment leaves either the previous checkpoint or the
new one, never a torn file. The previous one is kept as ``checkpoint.prev.pt``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["save_checkpoint", "load_checkpoint", "CHECKPOINT"]

CHECKPOINT = "checkpoint.pt"


def save_checkpoint(state: dict[str, Any], run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT
    tmp = run_dir / f".{CHECKPOINT}.tmp"
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    if path.exists():
        os.replace(path, run_dir / "checkpoint.prev.pt")
    os.replace(tmp, path)
    return path


def load_checkpoint(
    run_dir: str | Path, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        prev = Path(run_dir) / "checkpoint.prev.pt"
        if prev.exists():  # killed between the two renames
            path = prev
        else:
            raise FileNotFoundError(f"no checkpoint in {str(run_dir)!r} (looked for {CHECKPOINT})")
    return torch.load(path, map_location=map_location, weights_only=False)  # type: ignore[no-any-return]
