"""Discounted returns, generalized advantage estimation and the linear feature baseline.

Every function takes time as the *last* axis of rewards, values and dones (``[..., time]``), so it
works unchanged on a trajectory's ``[task, env, time]`` layout and on flat ``[env, time]`` data.
``dones[..., t]`` is true when the episode (for RL²: the trial) ended at step ``t``; no value is
bootstrapped across it.
"""

from __future__ import annotations

import torch

__all__ = ["discounted_returns", "gae", "LinearFeatureBaseline"]


def discounted_returns(
    rewards: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
    last_value: torch.Tensor | None = None,
) -> torch.Tensor:
    """``G_t = r_t + gamma * (1 - done_t) * G_{t+1}``, with ``G_T = last_value`` (default 0)."""
    out = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[..., 0]) if last_value is None else last_value.to(rewards)
    not_done = 1.0 - dones.to(rewards.dtype)
    for t in range(rewards.shape[-1] - 1, -1, -1):
        running = rewards[..., t] + gamma * not_done[..., t] * running
        out[..., t] = running
    return out


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
    lam: float,
    last_value: torch.Tensor | None = None,
) -> torch.Tensor:
    """Generalized advantage estimates (Schulman et al. 2016, arXiv:1506.02438).

    ``A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}`` with
    ``delta_t = r_t + gamma * (1 - done_t) * V_{t+1} - V_t`` and ``V_T = last_value`` (default 0).
    ``lam = 1`` gives returns minus values; ``lam = 0`` the one-step TD error.
    """
    adv = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    next_value = torch.zeros_like(rewards[..., 0]) if last_value is None else last_value.to(rewards)
    not_done = 1.0 - dones.to(rewards.dtype)
    for t in range(rewards.shape[-1] - 1, -1, -1):
        delta = rewards[..., t] + gamma * not_done[..., t] * next_value - values[..., t]
        running = delta + gamma * lam * not_done[..., t] * running
        adv[..., t] = running
        next_value = values[..., t]
    return adv


class LinearFeatureBaseline:
    """Per-task linear value baseline of Duan et al. 2016 (rllab), used by MAML's inner loop.

    Features of a step are ``[o, o^2, t', t'^2, t'^3, 1]`` with the observation clipped to
    [-10, 10] and ``t' = t / 100`` the step index within its episode. One ridge regression per
    task is fitted to that task's returns, all tasks in one batched solve; the ridge grows tenfold
    when a system is singular, as in rllab.
    """

    def __init__(self, reg_coeff: float = 1e-5):
        self.reg_coeff = reg_coeff

    @staticmethod
    def features(obs: torch.Tensor, step_in_episode: torch.Tensor) -> torch.Tensor:
        """``obs [..., obs_dim]``, ``step_in_episode [...]`` -> ``[..., 2 * obs_dim + 4]``."""
        o = obs.clamp(-10, 10)
        t = (step_in_episode.to(obs.dtype) / 100.0).unsqueeze(-1)
        return torch.cat([o, o * o, t, t * t, t * t * t, torch.ones_like(t)], dim=-1)

    def fit_predict(
        self,
        obs: torch.Tensor,
        step_in_episode: torch.Tensor,
        returns: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """Fit one baseline per task and predict every step.

        Args:
            obs: ``[task, env, time, obs_dim]``.
            step_in_episode: ``[task, env, time]`` step index within the episode.
            returns: ``[task, env, time]`` regression targets.
            mask: ``[task, env, time]`` which steps count (padding after an episode does not).
        Returns:
            ``[task, env, time]`` baseline values (zero where ``mask`` is false).
        """
        feats = self.features(obs, step_in_episode)  # [task, env, time, F]
        m = mask.to(feats.dtype).unsqueeze(-1)
        x = (feats * m).flatten(1, 2)  # [task, env*time, F]
        y = (returns * mask.to(returns.dtype)).flatten(1, 2).unsqueeze(-1)  # [task, env*time, 1]
        xtx = x.transpose(1, 2) @ x  # [task, F, F]
        xty = x.transpose(1, 2) @ y  # [task, F, 1]
        eye = torch.eye(xtx.shape[-1], dtype=xtx.dtype, device=xtx.device)
        reg = self.reg_coeff
        for _ in range(5):
            weights, info = torch.linalg.solve_ex(xtx + reg * eye, xty)
            if not bool(torch.isnan(weights).any()) and int(info.max()) == 0:
                break
            reg *= 10
        return (feats @ weights.unsqueeze(1)).squeeze(-1) * mask.to(feats.dtype)
