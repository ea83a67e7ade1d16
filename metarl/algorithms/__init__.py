"""The learners. ``ALGORITHMS`` maps a config's ``algorithm`` name to its class (imported lazily)."""

from __future__ import annotations

import importlib

from metarl.algorithms.base import Algorithm
from metarl.tasks import check_choice

__all__ = ["ALGORITHMS", "Algorithm", "get_algorithm"]

ALGORITHMS: dict[str, str] = {
    "multitask_ppo": "metarl.algorithms.multitask_ppo:MultiTaskPPO",
}


def get_algorithm(name: str) -> type[Algorithm]:
    """The class of algorithm ``name``; an unknown name lists the known ones."""
    check_choice("algorithm", name, sorted(ALGORITHMS))
    module, _, attr = ALGORITHMS[name].partition(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
