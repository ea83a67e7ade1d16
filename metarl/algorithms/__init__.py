"""The learners. ``ALGORITHMS`` maps a config's ``algorithm`` name to its class (imported lazily)."""

from __future__ import annotations

import importlib

from metarl.algorithms.base import Algorithm
from metarl.tasks import check_choice

__all__ = ["ALGORITHMS", "Algorithm", "get_algorithm"]

ALGORITHMS: dict[str, str] = {
    "multitask_ppo": "metarl.algorithms.multitask_ppo:MultiTaskPPO",
    "maml_trpo": "metarl.algorithms.maml:MAMLTRPO",
    "maml_ppo": "metarl.algorithms.maml:MAMLPPO",
    "fomaml": "metarl.algorithms.maml:FOMAML",
    "meta_sgd": "metarl.algorithms.maml:MetaSGD",
    "promp": "metarl.algorithms.maml:ProMP",
    "reptile": "metarl.algorithms.reptile:Reptile",
    "pretrained_finetune": "metarl.algorithms.finetune:PretrainedFineTune",
    "oracle": "metarl.algorithms.oracle:Oracle",
    "rl2": "metarl.algorithms.rl2:RL2",
}


def get_algorithm(name: str) -> type[Algorithm]:
    """The class of algorithm ``name``; an unknown name lists the known ones."""
    check_choice("algorithm", name, sorted(ALGORITHMS))
    module, _, attr = ALGORITHMS[name].partition(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
