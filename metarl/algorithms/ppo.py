"""The PPO core shared by multi-task PPO, RL² and MAML-PPO (Schulman et al. 2017, arXiv:1707.06347).

Data come as ``[sequence, time]`` tensors. Minibatches are drawn along the sequence axis only, so
a recurrent learner (RL²) passes whole trials as sequences and each minibatch keeps every trial
intact, while a feed-forward learner passes its steps as sequences of length 1 and gets ordinary
step-level minibatches. ``mask`` removes padding steps from every average.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["PPOConfig", "PPOBatch", "ppo_update", "masked_mean", "explained_variance"]


@dataclass
class PPOConfig:
    """PPO hyperparameters."""

    learning_rate: float = 3e-4
    """Adam step size."""
    epochs: int = 10
    """Passes over the batch per update."""
    num_minibatches: int = 4
    """Minibatches per epoch, drawn along the sequence axis."""
    clip_coef: float = 0.2
    """Clipping range of the probability ratio."""
    clip_value: bool = False
    """Clip the value update around the old values too (PPO2-style)."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    target_kl: float | None = None
    """Stop the epochs early once the approximate KL exceeds this (None: never)."""
    normalize_advantages: bool = True
    """Standardize advantages within each minibatch."""
    gamma: float = 0.99
    """Discount."""
    gae_lambda: float = 0.95
    """GAE lambda."""


@dataclass
class PPOBatch:
    """Rollout data for one PPO update, every tensor ``[sequence, time]``."""

    log_probs: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    values: torch.Tensor
    mask: torch.Tensor

    @property
    def num_sequences(self) -> int:
        return self.log_probs.shape[0]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1.0)


def explained_variance(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """1 - Var[target - pred] / Var[target] over the masked steps (1 is perfect, <= 0 useless)."""
    m = mask.bool()
    y, p = target[m], pred[m]
    var = y.var()
    return 1 - (y - p).var() / var if var > 0 else torch.zeros((), device=y.device)


# evaluate(sequence_indices) -> (log_prob, entropy, value), each [len(indices), time], optionally
# followed by an auxiliary loss (a scalar, already weighted) that is added to the minibatch's loss
# and reported as "loss/aux".
Evaluate = Callable[[torch.Tensor], tuple[torch.Tensor, ...]]


def ppo_update(
    evaluate: Evaluate,
    batch: PPOBatch,
    parameters: Iterable[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    cfg: PPOConfig,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Run ``cfg.epochs`` epochs of clipped-surrogate updates; return the update's metrics."""
    params = list(parameters)
    n = batch.num_sequences
    mb_size = max(1, n // cfg.num_minibatches)
    stats: dict[str, list[torch.Tensor]] = {
        k: [] for k in ("policy", "value", "entropy", "approx_kl", "clipfrac", "aux")
    }
    epochs_run = 0
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=generator).to(batch.log_probs.device)
        kl_epoch = []
        for start in range(0, n, mb_size):
            idx = order[start : start + mb_size]
            mask = batch.mask[idx]
            new_logp, entropy, value, *aux = evaluate(idx)
            if len(aux) > 1:
                raise ValueError(
                    f"evaluate returned {3 + len(aux)} values; expected (log_prob, entropy, "
                    f"value) and at most one auxiliary loss"
                )
            adv = batch.advantages[idx]
            if cfg.normalize_advantages:
                mu = masked_mean(adv, mask)
                std = masked_mean((adv - mu) ** 2, mask).sqrt()
                adv = (adv - mu) / (std + 1e-8)
            log_ratio = new_logp - batch.log_probs[idx]
            ratio = log_ratio.exp()
            pg_loss = torch.max(
                -adv * ratio, -adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)
            )
            pg_loss = masked_mean(pg_loss, mask)
            ret = batch.returns[idx]
            if cfg.clip_value:
                old_v = batch.values[idx]
                v_clipped = old_v + (value - old_v).clamp(-cfg.clip_coef, cfg.clip_coef)
                v_loss = 0.5 * masked_mean(
                    torch.max((value - ret) ** 2, (v_clipped - ret) ** 2), mask
                )
            else:
                v_loss = 0.5 * masked_mean((value - ret) ** 2, mask)
            ent = masked_mean(entropy, mask)
            loss = pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * ent
            if aux:
                loss = loss + aux[0]
                stats["aux"].append(aux[0].detach())

            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()

            with torch.no_grad():
                # k3 estimator of KL(old || new) (Schulman, "Approximating KL divergence", 2020).
                approx_kl = masked_mean((ratio - 1) - log_ratio, mask)
                clipfrac = masked_mean(((ratio - 1).abs() > cfg.clip_coef).float(), mask)
            for k, v in zip(
                ("policy", "value", "entropy", "approx_kl", "clipfrac"),
                (pg_loss, v_loss, ent, approx_kl, clipfrac),
                strict=True,
            ):
                stats[k].append(v.detach())
            kl_epoch.append(approx_kl)
        epochs_run += 1
        if cfg.target_kl is not None and torch.stack(kl_epoch).mean() > cfg.target_kl:
            break

    means = {k: float(torch.stack(v).mean()) for k, v in stats.items() if v}
    extra = {"loss/aux": means["aux"]} if "aux" in means else {}
    return {
        **extra,
        "loss/policy": means["policy"],
        "loss/value": means["value"],
        "loss/entropy": means["entropy"],
        "optim/approx_kl": means["approx_kl"],
        "optim/clip_fraction": means["clipfrac"],
        "optim/epochs": float(epochs_run),
        "optim/explained_variance": float(
            explained_variance(batch.values, batch.returns, batch.mask)
        ),
    }
