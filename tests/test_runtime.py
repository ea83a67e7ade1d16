"""Process-wide runtime settings: torch threads and glibc's malloc thresholds."""

from __future__ import annotations

import sys

import pytest
import torch

from metarl.runtime import available_cores, keep_freed_memory, set_torch_threads


def test_zero_threads_means_every_available_core() -> None:
    before = torch.get_num_threads()
    try:
        assert set_torch_threads(0) == available_cores() == torch.get_num_threads()
        assert set_torch_threads(1) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_negative_threads_is_an_error_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"torch_threads=-1 must be >= 0"):
        set_torch_threads(-1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_is_accepted_by_glibc() -> None:
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # idempotent
