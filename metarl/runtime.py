"""Process-wide settings a training or benchmark process applies once, before the work starts.

Two things matter on a CPU host:

* **torch's intra-op threads.** Beside MuJoCo's own thread pool torch must run one thread (two
  pools on the same cores slow each other down several-fold); a torch-only family (point
  navigation, bandits, tabular MDPs) can use every core for its batched matrix products.
* **glibc's malloc returning large blocks to the kernel.** Batched meta-RL allocates the same
  tens-of-megabyte activations and gradients on every iteration (MAML's ``[task, sample, 100]``
  hidden layers are 32 MB at 40 tasks). By default glibc serves such blocks with ``mmap`` and
  gives them back on ``free``, so every iteration page-faults and zero-fills them again; on the
  MAML scaling benchmark that was 15-25% of the wall-clock (benchmarks/results/maml_scaling.md).
  :func:`keep_freed_memory` raises the thresholds so freed blocks stay in the heap for reuse.
  The process then does not shrink back after a peak. The peak itself did not grow: on that
  benchmark at 40 tasks, the max RSS was 0.96 GB with it and 1.04 GB without.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import torch

__all__ = ["available_cores", "keep_freed_memory", "set_torch_threads"]

# glibc <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 1 << 30  # 1 GiB: blocks below it come from (and return to) the heap


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the host's core count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def set_torch_threads(threads: int) -> int:
    """Set torch's intra-op threads; ``0`` means every available core. Returns the count set."""
    if threads < 0:
        raise ValueError(
            f"torch_threads={threads} must be >= 0 (0: all {available_cores()} available cores)"
        )
    n = threads or available_cores()
    torch.set_num_threads(n)
    return n


def keep_freed_memory() -> bool:
    """Keep freed blocks of up to 1 GiB in glibc's heap instead of unmapping them.

    Returns True if glibc accepted the settings; False (and nothing changed) on other C
    libraries and platforms. Idempotent.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, _THRESHOLD) == 1
    return mallopt(_M_TRIM_THRESHOLD, _THRESHOLD) == 1 and ok
