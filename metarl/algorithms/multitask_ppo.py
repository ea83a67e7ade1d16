"""Multi-task PPO: one task-blind policy trained with PPO on tasks drawn afresh every iteration.

This is the "pretrained" baseline of the MAML paper (Finn et al. 2017, section 5.3): it learns
the best single behaviour for the task distribution, and its weights are the initialization that
MAML-style fine-tuning is compared against. Its adaptation curve is flat by construction (the
policy does not see the task and is not updated at evaluation), which is the point of comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from metarl.algorithms.base import Algorithm
from metarl.algorithms.ppo import PPOBatch, PPOConfig, ppo_update
from metarl.env import BatchedEnv
from metarl.evaluation import AdaptationCurve
from metarl.policies import MLPValue, make_mlp_policy, sample_action, space_dim
from metarl.returns import gae
from metarl.sampling import Trajectory, rollout
from metarl.tasks import TaskBatch

__all__ = ["MultiTaskPPO", "MultiTaskPPOConfig"]


@dataclass
class MultiTaskPPOConfig:
    """Hyperparameters of multi-task PPO."""

    tasks_per_iteration: int = 20
    """Tasks drawn from the ``train`` split each iteration."""
    envs_per_task: int = 10
    """Environments (episodes) per task and iteration."""
    episodes_per_env: int = 1
    """Episodes each environment runs per iteration."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy and value MLPs."""
    activation: str = "tanh"
    """``tanh`` or ``relu``."""
    init_std: float = 1.0
    """Initial standard deviation of Gaussian policies."""
    eval_episodes: int = 2
    """Episodes per task at evaluation."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """The PPO update."""


class MultiTaskPPO(Algorithm):
    """PPO over a task distribution with a task-blind MLP policy and value function."""

    Config = MultiTaskPPOConfig

    def __init__(self, env_id: str, config: MultiTaskPPOConfig, **kwargs: Any):
        super().__init__(env_id, config, **kwargs)
        c = config
        self.env = self.make_env(c.tasks_per_iteration, c.envs_per_task)
        obs_space, act_space = self.env.single_observation_space, self.env.single_action_space
        self.policy = make_mlp_policy(
            obs_space,
            act_space,
            c.hidden,
            c.activation,  # type: ignore[arg-type]
            c.init_std,
        ).to(self.device)
        self.value = MLPValue(space_dim(obs_space), c.hidden, c.activation).to(self.device)  # type: ignore[arg-type]
        self.optimizer = torch.optim.Adam(
            [*self.policy.parameters(), *self.value.parameters()], lr=c.ppo.learning_rate, eps=1e-5
        )
        self.track(policy=self.policy, value=self.value, optimizer=self.optimizer, env=self.env)

    def act(
        self, obs: torch.Tensor, *_: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
        obs = obs.float()
        dist = self.policy.distribution(obs)
        action = sample_action(dist, self.action_generator)
        return action, dist.log_prob(action), self.value(obs), None

    def train_step(self) -> dict[str, float]:
        c = self.config
        self.env.set_tasks(self.sample_tasks(c.tasks_per_iteration))
        traj = rollout(self.env, self.act, c.episodes_per_env)
        batch, flat = self._ppo_batch(traj)

        def evaluate(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            dist = self.policy.distribution(flat["obs"][idx])
            return (
                dist.log_prob(flat["actions"][idx]),
                dist.entropy(),
                self.value(flat["obs"][idx]),
            )

        metrics = ppo_update(
            evaluate,
            batch,
            [*self.policy.parameters(), *self.value.parameters()],
            self.optimizer,
            c.ppo,
            self.generator,
        )
        steps = traj.num_steps
        self.env_steps += steps
        self.iteration += 1
        ep_returns = traj.episode_returns()
        return {
            **metrics,
            "env_steps": float(steps),
            "meta_train/return": float(ep_returns.mean()),
            "meta_train/episode_length": steps
            / (traj.mask.shape[0] * traj.mask.shape[1] * c.episodes_per_env),
        }

    def _ppo_batch(self, traj: Trajectory) -> tuple[PPOBatch, dict[str, torch.Tensor]]:
        """Advantages per trajectory, then every valid step as a sequence of length 1."""
        c = self.config.ppo
        assert traj.values is not None
        # Episodes are finite-horizon tasks: the time limit is terminal, nothing is bootstrapped.
        adv = gae(traj.rewards, traj.values, traj.dones, c.gamma, c.gae_lambda)
        keep = traj.mask  # [task, env, time]
        flat = {"obs": traj.obs[keep].float(), "actions": traj.actions[keep]}
        column = lambda x: x[keep].unsqueeze(1)  # noqa: E731  [steps, 1]
        batch = PPOBatch(
            log_probs=column(traj.log_probs),
            advantages=column(adv),
            returns=column(adv + traj.values),
            values=column(traj.values),
            mask=torch.ones_like(column(traj.rewards), dtype=torch.bool),
        )
        return batch, {k: v.unsqueeze(1) for k, v in flat.items()}

    @torch.no_grad()
    def adaptation_curve(
        self, env: BatchedEnv, tasks: TaskBatch, generator: torch.Generator
    ) -> AdaptationCurve:
        env.set_tasks(tasks)
        traj = rollout(env, self.act, self.config.eval_episodes)
        returns = traj.episode_returns().mean(dim=1)  # [task, episode]
        return AdaptationCurve(returns, "episode", env_steps=traj.num_steps)
