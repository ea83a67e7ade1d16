"""Reptile for policy gradients (Nichol et al. 2018, arXiv:1803.02999, Algorithm 2, batched).

The inner loop is MAML's (``InnerRule``: vanilla policy gradient with a per-task linear
baseline, fresh trajectories after every step), but the outer update needs no meta-gradient at
all: the initialization moves toward the mean of the adapted weights,

    theta <- theta + epsilon * mean_i (theta_i^(K) - theta).

With K >= 2 inner steps the expected update contains MAML's second-order term (Nichol et al.,
section 5), at first-order cost. No query rollout is drawn, so K inner steps spend the same
environment budget as MAML with K - 1 inner steps plus its query set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from metarl.algorithms.maml import MAML, MAMLConfig, MetaBatch

__all__ = ["Reptile", "ReptileConfig"]


@dataclass
class ReptileConfig(MAMLConfig):
    """Reptile: 2 inner steps (the same 2 rollouts per iteration as MAML with 1 step), outer
    interpolation ``epsilon = outer_lr``."""

    outer: Literal["trpo", "ppo", "reptile"] = "reptile"
    num_inner_steps: int = 2
    outer_lr: float = 0.5


class Reptile(MAML):
    """MAML's inner loop with Reptile's outer step toward the adapted weights."""

    Config = ReptileConfig

    def outer_update(self, batch: MetaBatch) -> dict[str, float]:
        eps = self.config.outer_lr
        with torch.no_grad():
            adapted = batch.chain[-1]  # {name: [task, ...]}, the weights sampling ended with
            sq = 0.0
            for name, p in self.policy.named_parameters():
                delta = adapted[name].mean(0) - p
                p.add_(eps * delta)
                sq += float((delta * delta).sum())
        return {"optim/reptile_step_norm": eps * sq**0.5}
