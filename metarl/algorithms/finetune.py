"""The MAML paper's "pretrained" baseline: multi-task PPO weights fine-tuned with MAML's inner rule.

Finn et al. 2017 (section 5.3) compare MAML's initialization with a policy pretrained on all
tasks at once and then adapted at test time with the same policy-gradient steps. Here the
pretraining is :class:`~metarl.algorithms.multitask_ppo.MultiTaskPPO` and the adaptation is
:class:`~metarl.adaptation.InnerRule`, so the only difference to MAML is how the initialization
was learned. With ``total_env_steps = 0`` the same class is the paper's "random" baseline: a
freshly initialized policy fine-tuned the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from metarl.adaptation import BatchMode, InnerRule, check_eval_batch, step_size_schedule
from metarl.algorithms.multitask_ppo import MultiTaskPPO, MultiTaskPPOConfig
from metarl.env import BatchedEnv
from metarl.evaluation import AdaptationCurve
from metarl.policies import make_mlp_policy
from metarl.tasks import TaskBatch

__all__ = ["PretrainedFineTune", "PretrainedFineTuneConfig"]


@dataclass
class PretrainedFineTuneConfig(MultiTaskPPOConfig):
    """Multi-task PPO pretraining (the MAML paper's policy: 2 x 100 ReLU) + inner-rule
    fine-tuning at evaluation, with MAML's evaluation protocol."""

    hidden: tuple[int, ...] = (100, 100)
    """Hidden sizes of the policy and value MLPs."""
    activation: str = "relu"
    """``tanh`` or ``relu``."""
    scale_actions: bool = True
    """Gaussian in [-1, 1] units scaled to the action box (as MAML's policy, so the same inner
    step sizes apply)."""
    eval_num_steps: int = 3
    """Fine-tuning gradient steps at evaluation (the curve has points 0..eval_num_steps)."""
    inner_lr: float = 0.5
    """Fine-tuning step size of the first step."""
    eval_lr_multipliers: tuple[float, ...] = (1.0, 0.5)
    """Step-size factor of step k (last repeated); (1.0, 0.5) halves after the first step."""
    eval_episodes: int = 40
    """Trajectories per task and fine-tuning step."""
    eval_batch_steps: int | None = None
    """If set, the least environment steps per task and fine-tuning step, in whole episodes,
    instead of ``eval_episodes`` trajectories (rllab's batch sampler, as MAML's
    ``eval_batch_steps``)."""
    eval_batch_envs: int = 4
    """With ``eval_batch_steps``: environments per task sharing the budget."""
    eval_batch_mode: BatchMode = "share"
    """With ``eval_batch_steps``: how the environments fill the batch (as MAML's
    ``eval_batch_mode``)."""
    inner_gamma: float = 0.99
    """Discount of the fine-tuning advantages."""
    inner_gae_lambda: float = 1.0
    """GAE lambda of the fine-tuning advantages (1.0: returns minus the linear baseline)."""


class PretrainedFineTune(MultiTaskPPO):
    """Multi-task PPO whose evaluation fine-tunes the learned weights with MAML's inner rule."""

    Config = PretrainedFineTuneConfig

    def __init__(self, env_id: str, config: PretrainedFineTuneConfig, **kwargs: Any):
        super().__init__(env_id, config, **kwargs)
        c = config
        if c.scale_actions:  # the parent builds an unscaled policy: replace it and its optimizer
            self.policy = make_mlp_policy(
                self.env.single_observation_space,
                self.env.single_action_space,
                c.hidden,
                c.activation,  # type: ignore[arg-type]
                c.init_std,
                scale_to_action_space=True,
            ).to(self.device)
            self.optimizer = torch.optim.Adam(
                [*self.policy.parameters(), *self.value.parameters()],
                lr=c.ppo.learning_rate,
                eps=1e-5,
            )
            self.track(policy=self.policy, optimizer=self.optimizer)
        self.rule = InnerRule("vpg", c.inner_gamma, c.inner_gae_lambda)
        batch_envs = check_eval_batch(c.eval_batch_steps, c.eval_batch_envs, c.eval_batch_mode)
        self.eval_envs_per_task = c.eval_episodes if batch_envs is None else batch_envs

    def adaptation_curve(
        self, env: BatchedEnv, tasks: TaskBatch, generator: torch.Generator
    ) -> AdaptationCurve:
        """Return after 0..``eval_num_steps`` fine-tuning steps (MAML's test protocol)."""
        c = self.config
        lrs = step_size_schedule(c.inner_lr, c.eval_lr_multipliers, c.eval_num_steps)
        return self.rule.curve(
            self.policy,
            env,
            tasks,
            lrs,
            generator,
            c.eval_episodes,
            batch_steps=c.eval_batch_steps,
            batch_mode=c.eval_batch_mode,
        )
