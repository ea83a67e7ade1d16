"""Classic tabular-MDP learners, batched over tasks: the RL² paper's Table 2 baselines.

Duan et al. 2016 (RL², arXiv:1611.02779, section 3.2) score RL² on random MDPs (10 states,
5 actions, N(1, 1) mean rewards with unit reward noise, Dirichlet(1) transitions, 10-step
episodes from state 0) against random, PSRL (Osband et al. 2013), OPSRL, UCRL2, BEB, eps-greedy and
greedy. Here: random, greedy (certainty equivalence) and PSRL.

Both model-based agents keep the same Bayesian posterior over the MDP, with per-(state, action)
statistics ``[env, state, action]``:

* rewards: Normal with known noise variance ``reward_noise_std^2`` (1, the truth) and a conjugate
  Normal prior ``N(reward_prior_mean, reward_prior_std^2)`` on each mean. The paper's PSRL used a
  prior mean of 0 although the true mean is 1 (ANCHORS.md 2, "known quirk"); both are supported
  and every result must name its ``reward_prior_mean``.
* transitions: Dirichlet(1, ..., 1) prior (the truth), so the posterior is Dirichlet(1 + counts).

At the start of every episode an agent picks an MDP (PSRL: a posterior sample; greedy: the
posterior mean, or the empirical model with a flat reward prior) and follows its optimal policy for the episode's finite horizon, computed by
batched backward induction (:func:`backward_induction`) for all environments at once.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Literal

import torch

from metarl.baselines.bandits import TIE_BREAKS, TieBreak, best_action, env_seed, sample_gamma
from metarl.env import BatchedEnv
from metarl.evaluation import AdaptationCurve
from metarl.tasks import TaskBatch, check_choice

__all__ = ["MDPAgent", "RandomMDP", "GreedyMDP", "PSRL", "backward_induction"]


def backward_induction(
    reward: torch.Tensor, transition: torch.Tensor, horizon: int
) -> torch.Tensor:
    """Optimal finite-horizon Q-values of a batch of MDPs, ``[batch, horizon, state, action]``.

    ``Q[:, h, s, a]`` is the best expected return of the remaining ``horizon - h`` steps after
    taking ``a`` in ``s`` at step ``h``: ``Q_h = R + P V_{h+1}``, ``V_h = max_a Q_h``,
    ``V_horizon = 0``. ``reward`` is ``[batch, S, A]``, ``transition`` ``[batch, S, A, S]``.
    """
    value = torch.zeros(reward.shape[:2], dtype=reward.dtype, device=reward.device)  # [batch, S]
    q = []
    for _ in range(horizon):
        expected_next = (transition @ value[:, None, :, None])[..., 0]  # [batch, S, A]
        q_h = reward + expected_next
        q.append(q_h)
        value = q_h.max(dim=-1).values
    return torch.stack(q[::-1], dim=1)  # [batch, horizon, S, A]


class MDPAgent(ABC):
    """A tabular agent run for a trial of ``num_episodes`` episodes on every task at once.

    Subclasses implement :meth:`plan`, called at the start of every episode with the posterior
    statistics, returning Q-values ``[env, horizon, S, A]`` to act greedily on (ties at random).
    """

    name = "mdp-agent"

    def __init__(
        self,
        num_episodes: int,
        reward_prior_mean: float = 1.0,
        reward_prior_std: float = 1.0,
        reward_noise_std: float = 1.0,
        tie_break: TieBreak = "random",
    ):
        if not isinstance(num_episodes, int) or num_episodes < 1:
            raise ValueError(
                f"num_episodes={num_episodes!r} must be a positive int (episodes per trial)"
            )
        if reward_prior_std <= 0 or reward_noise_std <= 0:
            raise ValueError(
                f"reward_prior_std={reward_prior_std!r} and reward_noise_std="
                f"{reward_noise_std!r} must be > 0"
            )
        check_choice("tie_break", tie_break, TIE_BREAKS)
        self.num_episodes = num_episodes
        self.tie_break = tie_break
        self.reward_prior_mean = float(reward_prior_mean)
        self.reward_prior_std = float(reward_prior_std)
        self.reward_noise_std = float(reward_noise_std)

    # --- the posterior --------------------------------------------------------------------------
    def reward_posterior(
        self, visits: torch.Tensor, reward_sum: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and std of every mean reward (conjugate Normal, known noise).

        With ``reward_prior_std = inf`` (a flat prior) the mean is the sample mean of a visited
        pair and ``reward_prior_mean`` for an unvisited one, whose std is then infinite.
        """
        prior_prec = 1.0 / self.reward_prior_std**2
        noise_prec = 1.0 / self.reward_noise_std**2
        precision = prior_prec + visits * noise_prec  # [env, S, A]
        mean = (prior_prec * self.reward_prior_mean + noise_prec * reward_sum) / precision
        if prior_prec == 0.0:  # flat prior: 0/0 where unvisited
            mean = torch.where(visits > 0, mean, self.reward_prior_mean)
        return mean, precision.rsqrt()

    @abstractmethod
    def plan(
        self,
        visits: torch.Tensor,
        reward_sum: torch.Tensor,
        transitions: torch.Tensor,
        horizon: int,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Q-values ``[env, horizon, S, A]`` for the coming episode."""

    # --- the trial loop -------------------------------------------------------------------------
    def adaptation_curve(
        self, env: BatchedEnv, tasks: TaskBatch, generator: torch.Generator
    ) -> AdaptationCurve:
        """Play ``num_episodes`` episodes in every env; ``returns[task, episode]``.

        Needs a tabular env: one-hot observations of the state, discrete actions, episodes of
        exactly ``env.max_episode_steps`` steps (no early termination).
        """
        env.set_tasks(tasks)
        obs = env.reset(seed=env_seed(generator))
        n, device, horizon = env.num_envs, env.device, env.max_episode_steps
        num_states = obs.shape[-1]
        num_actions = int(env.single_action_space.n)  # type: ignore[attr-defined]
        shape = (n, num_states, num_actions)
        visits = torch.zeros(shape, dtype=torch.float64, device=device)  # [env, S, A]
        reward_sum = torch.zeros(shape, dtype=torch.float64, device=device)  # [env, S, A]
        transitions = torch.zeros(
            *shape, num_states, dtype=torch.float64, device=device
        )  # [env, S, A, S']
        flat_sa = visits.view(n, -1)
        flat_sas = transitions.view(n, -1)
        rows = torch.arange(n, device=device)
        returns = torch.zeros(n, self.num_episodes, dtype=torch.float64, device=device)
        for episode in range(self.num_episodes):
            q = self.plan(visits, reward_sum, transitions, horizon, generator)  # [env, H, S, A]
            for h in range(horizon):
                state = obs.argmax(dim=-1)  # [env]
                action = best_action(q[rows, h, state], generator, self.tie_break)  # [env]
                obs, reward, terminated, truncated, info = env.step(action)
                next_state = info["final_obs"].argmax(dim=-1)  # the true next state at the end
                sa = state * num_actions + action  # [env] flat (state, action)
                flat_sa[rows, sa] += 1
                reward_sum.view(n, -1)[rows, sa] += reward.double()
                flat_sas[rows, sa * num_states + next_state] += 1
                returns[:, episode] += reward.double()
        per_task = returns.view(env.num_tasks, env.envs_per_task, -1).mean(1)  # [task, episode]
        return AdaptationCurve(
            per_task.float().cpu(), "episode", env_steps=n * self.num_episodes * horizon
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_episodes={self.num_episodes}, "
            f"reward_prior_mean={self.reward_prior_mean})"
        )


class RandomMDP(MDPAgent):
    """Uniformly random actions: every Q-value equal, so the tie-break picks at random."""

    name = "random"

    def __init__(self, num_episodes: int):
        super().__init__(num_episodes, tie_break="random")

    def plan(
        self,
        visits: torch.Tensor,
        reward_sum: torch.Tensor,
        transitions: torch.Tensor,
        horizon: int,
        generator: torch.Generator,
    ) -> torch.Tensor:
        n, s, a = visits.shape
        return torch.zeros(n, horizon, s, a, dtype=visits.dtype, device=visits.device)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_episodes={self.num_episodes})"


class GreedyMDP(MDPAgent):
    """Certainty equivalence: the optimal policy of an estimated MDP, replanned per episode.

    Mean rewards are the Normal posterior means (prior ``N(reward_prior_mean,
    reward_prior_std^2)``; ``reward_prior_std=math.inf`` gives sample means, and
    ``reward_prior_mean`` for unvisited pairs). Transitions are either the ``"empirical"``
    frequencies (uniform for an unvisited pair) or the Dirichlet(1) ``"posterior"`` means
    ``(1 + counts) / (S + visits)``.
    """

    name = "greedy"

    def __init__(
        self,
        num_episodes: int,
        reward_prior_mean: float = 1.0,
        reward_prior_std: float = 1.0,
        reward_noise_std: float = 1.0,
        tie_break: TieBreak = "random",
        transitions: Literal["empirical", "posterior"] = "posterior",
    ):
        super().__init__(
            num_episodes, reward_prior_mean, reward_prior_std, reward_noise_std, tie_break
        )
        check_choice("transitions", transitions, ("empirical", "posterior"))
        self.transitions = transitions

    def plan(
        self,
        visits: torch.Tensor,
        reward_sum: torch.Tensor,
        transitions: torch.Tensor,
        horizon: int,
        generator: torch.Generator,
    ) -> torch.Tensor:
        mean, _ = self.reward_posterior(visits, reward_sum)  # [env, S, A]
        if self.transitions == "posterior":
            p = (transitions + 1) / (transitions + 1).sum(-1, keepdim=True)  # [env, S, A, S']
        else:
            n = transitions.sum(-1, keepdim=True)  # [env, S, A, 1]
            uniform = torch.full_like(transitions, 1.0 / transitions.shape[-1])
            p = torch.where(n > 0, transitions / n.clamp(min=1), uniform)
        return backward_induction(mean, p, horizon)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_episodes={self.num_episodes}, "
            f"reward_prior_mean={self.reward_prior_mean}, "
            f"reward_prior_std={self.reward_prior_std}, transitions={self.transitions!r})"
        )


class PSRL(MDPAgent):
    """Posterior sampling for RL (Strens 2000; Osband, Russo and Van Roy 2013).

    At the start of each episode, draw one MDP from the posterior (a mean reward per (s, a) from
    its Normal posterior, a transition row per (s, a) from Dirichlet(1 + counts)) and follow its
    optimal finite-horizon policy for the whole episode.
    """

    name = "PSRL"

    def __init__(
        self,
        num_episodes: int,
        reward_prior_mean: float = 1.0,
        reward_prior_std: float = 1.0,
        reward_noise_std: float = 1.0,
        tie_break: TieBreak = "random",
    ):
        if math.isinf(reward_prior_std):
            raise ValueError(
                "PSRL needs a proper reward prior: reward_prior_std=inf cannot be "
                "sampled for unvisited pairs; pass a finite std"
            )
        super().__init__(
            num_episodes, reward_prior_mean, reward_prior_std, reward_noise_std, tie_break
        )

    def plan(
        self,
        visits: torch.Tensor,
        reward_sum: torch.Tensor,
        transitions: torch.Tensor,
        horizon: int,
        generator: torch.Generator,
    ) -> torch.Tensor:
        mean, std = self.reward_posterior(visits, reward_sum)  # [env, S, A]
        noise = torch.randn(
            mean.shape, generator=generator, dtype=mean.dtype, device=generator.device
        ).to(mean.device)
        reward = mean + std * noise
        # Dirichlet(alpha) = normalized Gamma(alpha_i) draws (torch.distributions takes no
        # generator); the +1 is the flat prior.
        g = sample_gamma(transitions + 1, generator)  # [env, S, A, S']
        p = g / g.sum(-1, keepdim=True)
        return backward_induction(reward, p, horizon)
