"""MAML for reinforcement learning and its policy-gradient relatives, as one class.

MAML (Finn et al. 2017, arXiv:1703.03400, Algorithm 3) meta-learns an initialization ``theta``
such that one or a few policy-gradient steps on a new task's trajectories give a good policy:

    for each iteration:
        sample a meta-batch of tasks
        for k in 0..K-1: sample trajectories with theta_k, theta_{k+1} = theta_k - alpha grad L(theta_k)
        sample query trajectories with the adapted theta_K
        outer update of theta on the query surrogate, differentiated through the inner steps

The variants differ in exactly one of those parts (DESIGN.md, Algorithms), chosen by the config:

=========== ====================== ============================ ===============================
variant     inner objective        step sizes                   outer update
=========== ====================== ============================ ===============================
MAML-TRPO   ``vpg``                fixed                        TRPO, second order
MAML-PPO    ``vpg``                fixed                        clipped surrogate (Adam)
FOMAML      ``vpg``                fixed                        TRPO, ``first_order``
Meta-SGD    ``vpg``                learned per parameter        TRPO over (theta, alpha)
ProMP       ``lvc``                fixed                        clipped surrogate + inner KL
Reptile     ``vpg``                fixed                        theta += eps (theta_K - theta)
=========== ====================== ============================ ===============================

Reptile lives in :mod:`metarl.algorithms.reptile` as a different ``outer_update``. The inner
loop itself is :class:`metarl.adaptation.InnerRule`: batched over the meta-batch, never a Python
loop over tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from metarl.adaptation import (
    BatchMode,
    InnerObjective,
    InnerRule,
    StepBatch,
    StepSize,
    check_eval_batch,
    detach_distribution,
    expand_params,
    kl_per_task,
    make_actor,
    step_size_schedule,
)
from metarl.algorithms.base import Algorithm
from metarl.algorithms.trpo import CurvatureProduct, trpo_step
from metarl.curvature import GaussianFisher, PolicyGradientHessian, supports_closed_form
from metarl.env import BatchedEnv
from metarl.evaluation import AdaptationCurve
from metarl.policies import GaussianMLPPolicy, MLPPolicy, Params, WeightInit, make_mlp_policy
from metarl.sampling import rollout
from metarl.tasks import TaskBatch

__all__ = [
    "MAML",
    "MetaBatch",
    "MAMLConfig",
    "MAMLTRPO",
    "MAMLPPO",
    "FOMAML",
    "MetaSGD",
    "ProMP",
    "LearnedStepSizes",
]


@dataclass
class MAMLConfig:
    """Hyperparameters of the MAML family. Defaults: the MAML paper's 2D navigation setting
    (ANCHORS.md section 3), with the official code's inner step 0.5."""

    meta_batch_size: int = 20
    """Tasks per meta-iteration."""
    episodes_per_task: int = 20
    """Trajectories per task for each inner step and for the query set (parallel envs)."""
    num_inner_steps: int = 1
    """Inner policy-gradient steps during meta-training."""
    inner_lr: float = 0.5
    """Inner step size alpha (official code 0.5; the paper's appendix says 0.1)."""
    inner_lr_multipliers: tuple[float, ...] = (1.0,)
    """Step-size factor of training inner step k (last one repeated), e.g. (1.0, 0.5) to train
    two steps with the evaluation's halving schedule."""
    inner_objective: InnerObjective = "vpg"
    """``vpg`` (MAML) or ``lvc`` (ProMP's low-variance curvature objective)."""
    first_order: bool = False
    """Drop the second-order terms: the inner gradient is treated as a constant (FOMAML)."""
    meta_sgd: bool = False
    """Learn one inner step size per parameter (Meta-SGD), initialised to ``inner_lr``."""
    outer: Literal["trpo", "ppo", "reptile"] = "trpo"
    """Outer update: TRPO (MAML-TRPO), clipped surrogate with Adam (MAML-PPO, ProMP), Reptile."""
    hidden: tuple[int, ...] = (100, 100)
    """Policy MLP hidden sizes (paper: 2 x 100)."""
    activation: Literal["relu", "tanh"] = "relu"
    """Policy hidden activation (paper: ReLU)."""
    init_std: float = 1.0
    """Initial standard deviation, in units of the action box's half-width if ``scale_actions``."""
    weight_init: WeightInit = "torch"
    """Initial weights of the policy MLP: ``torch`` (PyTorch's default) or ``xavier``
    (Glorot-uniform weights and zero biases, as the official MAML code's policy)."""
    scale_actions: bool = True
    """Policy acts in [-1, 1] scaled to the action box, as rllab's ``normalize(env)`` in the
    official MAML code; keeps the published step sizes meaningful."""
    gamma: float = 0.99
    """Discount."""
    gae_lambda: float = 1.0
    """GAE lambda of the advantages (1.0: Monte-Carlo return minus the linear baseline)."""
    normalize_advantages: bool = True
    """Standardize advantages per task (rllab's ``center_adv``)."""
    inner_baseline: Literal["linear", "none"] = "linear"
    """Inner-step baseline: the per-task linear feature baseline fitted on the batch it scores
    (the paper's appendix), or none (returns as advantages)."""
    max_kl: float = 0.01
    """TRPO: KL trust region of the post-adaptation policies."""
    cg_iters: int = 10
    """TRPO: conjugate-gradient iterations."""
    cg_damping: float = 1e-5
    """TRPO: damping added to the Fisher-vector products."""
    ls_max_steps: int = 15
    """TRPO: backtracking line-search steps."""
    ls_backtrack_ratio: float = 0.8
    """TRPO: shrink factor of each line-search step."""
    fvp_subsample: float = 0.1
    """TRPO: fraction of each task's steps the curvature products use (the TRPO paper's
    appendix C subsamples them the same way), evaluated at the weights the whole batch's inner
    steps reached; the gradient and line search use all steps. 1.0 is the official MAML code's
    setting (its conjugate-gradient optimizer used the whole batch) and costs about 3.5x more
    per iteration at the paper's setting; 0.2 costs 1.3x and is what the 2D-navigation
    reproduction uses (experiments/results/maml_point_nav.md)."""
    fvp_through_inner: bool = True
    """TRPO: curvature = Hessian of the post-adaptation KL through the inner steps (exact);
    False: the Fisher at the adapted parameters (drops d theta'/d theta, much cheaper)."""
    closed_form_curvature: bool = True
    """TRPO: form the curvature products through the inner steps in closed form
    (:mod:`metarl.curvature`) where the policy is a Gaussian MLP and the inner objective is
    ``vpg``; False, or any other policy: autograd's double backward. The same matrix either way."""
    outer_lr: float = 1e-3
    """PPO/ProMP: Adam step size; Reptile: interpolation factor epsilon."""
    outer_epochs: int = 5
    """PPO/ProMP: gradient steps on each meta-batch (ProMP: 5)."""
    clip_coef: float = 0.2
    """PPO/ProMP: clipping range of the post-adaptation likelihood ratio (ProMP: 0.3)."""
    inner_kl_coef: float = 0.0
    """PPO/ProMP: penalty on KL(sampling policy || current policy) of every inner step's policy
    (ProMP: 5e-4)."""
    sample_by_steps: bool = False
    """Training batches counted in env steps, as the official MAML code's sampler did: each of a
    task's ``episodes_per_task`` environments runs whole episodes back to back until it has taken
    a horizon's worth of steps, so a task whose episodes end early (the goal reached) yields
    more, shorter ones. False: exactly one episode per environment."""
    eval_num_steps: int = 3
    """Inner steps at evaluation (the curve has points 0..eval_num_steps)."""
    eval_inner_lr: float | None = None
    """Step size of the first evaluation step (None: ``inner_lr``)."""
    eval_lr_multipliers: tuple[float, ...] = (1.0, 0.5)
    """Step-size factor of evaluation step k (last one repeated): (1.0, 0.5) halves after the
    first step as the MAML paper's test script did."""
    eval_episodes: int = 40
    """Trajectories per task and evaluation step (paper: 40)."""
    eval_batch_steps: int | None = None
    """If set, each evaluation point samples whole episodes until it has at least this many
    environment steps per task, instead of ``eval_episodes`` trajectories: rllab's samplers,
    which produced the MAML paper's numbers (its test script: 4000 steps, with
    ``eval_batch_envs = 40`` and ``eval_batch_mode = "lockstep"``). The score is the mean over
    the batch's episodes; see :meth:`metarl.adaptation.InnerRule.curve` for why it is higher
    than the per-trajectory mean."""
    eval_batch_envs: int = 4
    """With ``eval_batch_steps``: environments per task sharing the budget, each running episodes
    back to back (the paper's test script: 40, its 4000 steps over the 100-step horizon)."""
    eval_batch_mode: BatchMode = "share"
    """With ``eval_batch_steps``: ``share`` (each environment runs to its equal share and finishes
    its episode) or ``lockstep`` (the environments step together until their completed episodes
    hold the budget; the unfinished ones are dropped, as the paper's test script's sampler did).
    See :meth:`metarl.adaptation.InnerRule.curve`."""


@dataclass
class MetaBatch:
    """What one meta-iteration sampled: per-step support data, the query data and the inner
    steps that produced the policies which sampled them."""

    support: list[StepBatch]
    """One batch per inner step, drawn by the policy adapted that many times."""
    query: StepBatch | None
    """Drawn by the fully adapted policy (None when the outer update needs none: Reptile)."""
    returns: list[float]
    """Mean episode return of each rollout (support steps, then query)."""
    env_steps: int
    chain: list[Params]
    """``[theta_0, ..., theta_K]`` stacked per task; a differentiable function of the
    meta-parameters when sampled with ``differentiable=True``, detached otherwise."""


class LearnedStepSizes(nn.Module):
    """Meta-SGD's per-parameter inner step sizes (Li et al. 2017, arXiv:1707.09835, eq. 2).

    ``theta_i' = theta - alpha (.) grad L_i(theta)`` with ``alpha`` the same shape as ``theta``,
    learned by the outer loop alongside it.
    """

    def __init__(self, params: Params, init: float):
        super().__init__()
        self.names = list(params)
        self.alpha = nn.ParameterList(
            [nn.Parameter(torch.full_like(p, init)) for p in params.values()]
        )

    def as_dict(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.alpha, strict=True))


class MAML(Algorithm):
    """The MAML policy-gradient family; the config picks the variant (see the module docstring)."""

    Config = MAMLConfig

    def __init__(self, env_id: str, config: MAMLConfig, **kwargs: Any):
        super().__init__(env_id, config, **kwargs)
        c = config
        if c.num_inner_steps < 1:
            raise ValueError(f"num_inner_steps={c.num_inner_steps} must be >= 1")
        self.env = self.make_env(c.meta_batch_size, c.episodes_per_task)
        self.policy = make_mlp_policy(
            self.env.single_observation_space,
            self.env.single_action_space,
            c.hidden,
            c.activation,
            c.init_std,
            scale_to_action_space=c.scale_actions,
            weight_init=c.weight_init,
        ).to(self.device)
        self.rule = InnerRule(
            c.inner_objective,
            c.gamma,
            c.gae_lambda,
            c.normalize_advantages,
            baseline=c.inner_baseline,
        )
        self.step_sizes = (
            LearnedStepSizes(self.policy.params(), c.inner_lr).to(self.device)
            if c.meta_sgd
            else None
        )
        batch_envs = check_eval_batch(c.eval_batch_steps, c.eval_batch_envs, c.eval_batch_mode)
        self.eval_envs_per_task = c.eval_episodes if batch_envs is None else batch_envs
        self.track(policy=self.policy, env=self.env)
        if self.step_sizes is not None:
            self.track(step_sizes=self.step_sizes)
        self.optimizer: torch.optim.Optimizer | None = None
        if c.outer == "ppo":
            self.optimizer = torch.optim.Adam(self.meta_parameters(), lr=c.outer_lr)
            self.track(optimizer=self.optimizer)

    # --- parameters --------------------------------------------------------------------------
    def meta_parameters(self) -> list[torch.Tensor]:
        """What the outer loop learns: the policy's weights (and Meta-SGD's step sizes)."""
        out: list[torch.Tensor] = list(self.policy.parameters())
        if self.step_sizes is not None:
            out += list(self.step_sizes.parameters())
        return out

    def inner_lr(self) -> StepSize:
        return self.step_sizes.as_dict() if self.step_sizes is not None else self.config.inner_lr

    # --- one meta-iteration --------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        c = self.config
        self.env.set_tasks(self.sample_tasks(c.meta_batch_size))
        batch = self.sample(with_query=c.outer != "reptile", differentiable=c.outer != "reptile")
        metrics = self.outer_update(batch)
        self.env_steps += batch.env_steps
        self.iteration += 1
        metrics.update({f"meta_train/return_step_{k}": r for k, r in enumerate(batch.returns)})
        metrics["meta_train/return"] = batch.returns[-1]
        metrics["env_steps"] = float(batch.env_steps)
        return metrics

    def sample(self, with_query: bool = True, differentiable: bool = False) -> MetaBatch:
        """Trajectories of every inner step (and the query set) for the tasks set in ``env``.

        Step ``k``'s trajectories come from the policy adapted ``k`` times. With
        ``differentiable`` the inner steps are taken from the live meta-parameters with the graph
        the outer update differentiates (second order unless ``first_order``), so an outer update
        that starts at the sampling parameters (TRPO, and the first epoch of PPO's) reuses them
        instead of recomputing the same steps; the rollouts always act with detached copies.
        """
        c = self.config
        n = c.meta_batch_size
        dtype = next(self.policy.parameters()).dtype
        lrs = self.train_step_sizes(c.num_inner_steps)
        start = self.policy.params()
        if not differentiable:
            start = {k: v.detach() for k, v in start.items()}
            lrs = [
                lr if isinstance(lr, float) else {k: a.detach() for k, a in lr.items()}
                for lr in lrs
            ]
        chain: list[Params] = [expand_params(start, n)]
        acting: Params | None = None  # None: the module's own weights, no task axis needed
        support: list[StepBatch] = []
        query: StepBatch | None = None
        returns, steps = [], 0
        for k in range(c.num_inner_steps + int(with_query)):
            with torch.no_grad():
                actor = make_actor(self.policy, acting, n, self.action_generator)
                horizon = self.env.max_episode_steps if c.sample_by_steps else None
                traj = rollout(self.env, actor, min_steps=horizon)
                returns.append(float(traj.mean_episode_return().mean()))
                steps += traj.num_steps
                batch = self.rule.process(traj, dtype)
            if k == c.num_inner_steps:
                query = batch
                break
            support.append(batch)
            with torch.set_grad_enabled(differentiable):
                second_order = differentiable and not c.first_order
                chain.append(self.rule.step(self.policy, chain[-1], batch, lrs[k], second_order))
            acting = {name: v.detach() for name, v in chain[-1].items()}
        return MetaBatch(support, query, returns, steps, chain)

    def adapt(self, support: list[StepBatch], create_graph: bool) -> list[Params]:
        """The inner steps recomputed from ``theta`` on the sampled support data."""
        theta = expand_params(self.policy.params(), support[0].num_tasks)
        return self.rule.adapt(
            self.policy, theta, support, self.train_step_sizes(len(support)), create_graph
        )

    def train_step_sizes(self, num_steps: int) -> list[StepSize]:
        return step_size_schedule(self.inner_lr(), self.config.inner_lr_multipliers, num_steps)

    # --- outer updates -------------------------------------------------------------------------
    def outer_update(self, batch: MetaBatch) -> dict[str, float]:
        if batch.query is None:
            raise ValueError(f"outer={self.config.outer!r} needs a query rollout")
        if self.config.outer == "trpo":
            return self.trpo_update(batch.support, batch.query, batch.chain)
        return self.ppo_update(batch.support, batch.query, batch.chain)

    def trpo_update(
        self, support: list[StepBatch], query: StepBatch, chain: list[Params] | None = None
    ) -> dict[str, float]:
        """MAML-TRPO: TRPO on the post-adaptation surrogate, second order through the inner
        steps unless ``first_order`` (Finn et al. 2017, section 5.3). ``chain``: the inner steps
        as ``sample(differentiable=True)`` took them at the current parameters, if at hand."""
        c = self.config
        if chain is None or not _tracks_grad(chain):
            chain = self.adapt(support, create_graph=not c.first_order)
        dist = self.policy.distribution(query.obs, chain[-1], True)
        old = detach_distribution(dist)
        old_logp = old.log_prob(query.actions)
        ratio = torch.exp(dist.log_prob(query.actions) - old_logp)
        loss = -query.mean(ratio * query.advantages).mean()

        def evaluate() -> tuple[torch.Tensor, torch.Tensor]:
            new = self.policy.distribution(query.obs, self.adapt(support, False)[-1], True)
            ratio = torch.exp(new.log_prob(query.actions) - old_logp)
            return (
                -query.mean(ratio * query.advantages).mean(),
                kl_per_task(old, new, query).mean(),
            )

        return trpo_step(
            self.meta_parameters(),
            loss,
            self.curvature(support, query, chain),
            evaluate,
            c.max_kl,
            c.cg_iters,
            c.cg_damping,
            c.ls_max_steps,
            c.ls_backtrack_ratio,
        )

    def curvature(
        self, support: list[StepBatch], query: StepBatch, chain: list[Params]
    ) -> torch.Tensor | CurvatureProduct:
        """TRPO's metric: the Hessian of the post-adaptation KL, through the inner steps unless
        ``fvp_through_inner`` is off. With fixed step sizes it is formed as the factored product
        of :meth:`curvature_product`; otherwise (Meta-SGD's learned step sizes are
        meta-parameters too, first order, or the Fisher at the adapted weights) as the KL
        whose Hessian ``trpo_step`` differentiates (:meth:`curvature_kl`)."""
        c = self.config
        if c.fvp_through_inner and not c.first_order and self.step_sizes is None:
            return self.curvature_product(support, query, chain)
        return self.curvature_kl(support, query, chain)

    def curvature_product(
        self, support: list[StepBatch], query: StepBatch, chain: list[Params]
    ) -> CurvatureProduct:
        """``v -> H v`` for ``H`` the Hessian at ``theta`` of ``KL(pi_old' || pi_theta')``
        through the inner steps, exactly, without third derivatives.

        Because the KL and its gradient vanish at the current adapted weights, its Hessian with
        respect to ``theta`` is ``J^T F' J``, with ``F'`` the KL's Hessian with respect to the
        adapted weights (the Fisher there) and ``J = d theta' / d theta``. One inner step
        ``theta_k = theta_{k-1} - alpha_k grad L_k`` has the symmetric Jacobian
        ``I - alpha_k H_k`` (``H_k`` the inner loss's Hessian), so ``J v`` runs the steps forward
        and ``J^T w`` backward, each a Hessian-vector product of an inner loss; with ``F'`` that
        is ``2K + 1`` second-order products per ``v`` instead of one third-order pass through
        the gradient of the KL's gradient (:meth:`curvature_kl`, the same matrix). The data
        are the same subsamples :meth:`curvature_kl` would draw; every factor is evaluated at
        the weights ``chain`` holds, the inner steps as taken on the whole batch. The products
        are formed in closed form (:mod:`metarl.curvature`) for a Gaussian MLP policy and the
        ``vpg`` inner objective unless ``closed_form_curvature`` is off, by autograd otherwise.
        """
        c = self.config
        schedule = self.train_step_sizes(len(support))
        lrs = [float(lr) for lr in schedule if isinstance(lr, float | int)]
        if len(lrs) != len(schedule):
            raise TypeError(
                "curvature_product needs fixed inner step sizes; learned ones (Meta-SGD) are "
                "meta-parameters too and go through curvature_kl"
            )
        sub_query = query.subsample(c.fvp_subsample, self.generator)
        sub_support = [b.subsample(c.fvp_subsample, self.generator) for b in support]
        theta = {k: v.detach() for k, v in self.policy.params().items()}
        points = [{k: v.detach() for k, v in p.items()} for p in chain]
        closed_form = (
            c.closed_form_curvature
            and self.rule.objective == "vpg"
            and supports_closed_form(self.policy)
        )
        make = _closed_form_steps if closed_form else self._autograd_steps
        steps, fisher = make(self.policy, points, sub_support, sub_query, lrs)
        sizes = [v.numel() for v in theta.values()]
        n = query.num_tasks

        def product(v: torch.Tensor) -> torch.Tensor:
            shaped = {
                k: x.view_as(t) for x, (k, t) in zip(v.split(sizes), theta.items(), strict=True)
            }
            u = expand_params(shaped, n)
            for hessian, lr in steps:  # J v: forward through the steps
                hu = hessian(u)
                u = {k: x - lr * hu[k] for k, x in u.items()}
            w = fisher(u)  # F' J v
            for hessian, lr in reversed(steps):  # J^T: backward through them
                hw = hessian(w)
                w = {k: x - lr * hw[k] for k, x in w.items()}
            return torch.cat([x.sum(0).reshape(-1) for x in w.values()])  # theta is shared

        return product

    def _autograd_steps(
        self,
        policy: MLPPolicy,
        points: list[Params],
        support: list[StepBatch],
        query: StepBatch,
        lrs: list[float],
    ) -> tuple[list[tuple[_Product, float]], _Product]:
        """The inner Hessians at ``points[:-1]`` and the Fisher at ``points[-1]`` as autograd
        products (``points``: the task-stacked weights before and after each inner step)."""
        # Each inner step's gradient from a fresh leaf, its graph kept for the Hessian-vector
        # products at that point.
        steps: list[tuple[_Product, float]] = []
        with torch.enable_grad():
            for point, batch, lr in zip(points[:-1], support, lrs, strict=True):
                at = {k: v.clone().requires_grad_() for k, v in point.items()}
                grads = self.rule.gradients(policy, at, batch, create_graph=True)
                steps.append((_autograd_hvp(at, grads), lr))
            adapted = {k: v.clone().requires_grad_() for k, v in points[-1].items()}
            dist = policy.distribution(query.obs, adapted, True)
            kl = kl_per_task(detach_distribution(dist), dist, query).mean()
            kl_grads = list(torch.autograd.grad(kl, list(adapted.values()), create_graph=True))
        return steps, _autograd_hvp(adapted, kl_grads)

    def curvature_kl(
        self, support: list[StepBatch], query: StepBatch, chain: list[Params]
    ) -> torch.Tensor:
        """KL(pi_old' || pi') on a subsample, zero with zero gradient at ``theta``: its Hessian
        is TRPO's metric.

        Through the inner steps unless ``fvp_through_inner`` is off, in which case the adapted
        weights enter with ``d theta'/d theta = I``. Each inner step is recomputed on its
        subsampled support data for its derivative, then moved back onto the weights ``chain``
        holds (``x + (y - y.detach())`` keeps the value ``x`` and the derivative of ``y``), so
        every factor of the metric is evaluated where the whole-batch inner steps went rather
        than where a step on a tenth of the data would have gone.
        """
        c = self.config
        sub_query = query.subsample(c.fvp_subsample, self.generator)
        n = query.num_tasks
        if c.fvp_through_inner and not c.first_order:
            sub_support = [b.subsample(c.fvp_subsample, self.generator) for b in support]
            lrs = self.train_step_sizes(len(support))
            adapted = expand_params(self.policy.params(), n)
            for batch, lr, point in zip(sub_support, lrs, chain[1:], strict=True):
                step = self.rule.step(self.policy, adapted, batch, lr, True)
                adapted = {k: point[k].detach() + step[k] - step[k].detach() for k in step}
        else:
            theta = expand_params(self.policy.params(), n)
            adapted = {k: chain[-1][k].detach() + theta[k] - theta[k].detach() for k in theta}
        dist = self.policy.distribution(sub_query.obs, adapted, True)
        return kl_per_task(detach_distribution(dist), dist, sub_query).mean()

    def ppo_update(
        self, support: list[StepBatch], query: StepBatch, chain: list[Params] | None = None
    ) -> dict[str, float]:
        """Clipped-surrogate outer loop (MAML-PPO; ProMP, Rothfuss et al. 2019, Algorithm 1).

        ``outer_epochs`` Adam steps on the same meta-batch, each recomputing the inner steps from
        the current ``theta``; the first reuses ``chain``, the inner steps as
        ``sample(differentiable=True)`` took them at these parameters, if at hand. ProMP adds
        ``inner_kl_coef`` times the KL between each inner step's sampling policy and its current
        counterpart, which keeps the pre-update policies near the ones that collected the
        support data.
        """
        c = self.config
        assert self.optimizer is not None
        sampled = chain if chain is not None and _tracks_grad(chain) else None
        with torch.no_grad():
            start = (
                [{k: v.detach() for k, v in p.items()} for p in sampled]
                if sampled is not None
                else self.adapt(support, create_graph=False)
            )
            olds = [
                detach_distribution(self.policy.distribution(b.obs, p, True))
                for b, p in zip(support, start, strict=False)
            ]
        stats: dict[str, list[float]] = {
            "loss/surrogate": [],
            "optim/inner_kl": [],
            "optim/clip_fraction": [],
        }
        for epoch in range(c.outer_epochs):
            if epoch == 0 and sampled is not None:
                chain = sampled
            else:
                chain = self.adapt(support, create_graph=not c.first_order)
            dist = self.policy.distribution(query.obs, chain[-1], True)
            ratio = torch.exp(dist.log_prob(query.actions) - query.log_probs)
            clipped = ratio.clamp(1 - c.clip_coef, 1 + c.clip_coef)
            surrogate = torch.min(ratio * query.advantages, clipped * query.advantages)
            loss = -query.mean(surrogate).mean()
            inner_kl = torch.stack(
                [
                    kl_per_task(old, self.policy.distribution(b.obs, p, True), b).mean()
                    for old, b, p in zip(olds, support, chain, strict=False)
                ]
            ).mean()
            self.optimizer.zero_grad(set_to_none=True)
            (loss + c.inner_kl_coef * inner_kl).backward()
            self.optimizer.step()
            with torch.no_grad():
                frac = query.mean(((ratio - 1).abs() > c.clip_coef).to(ratio.dtype)).mean()
            for k, v in zip(stats, (loss, inner_kl, frac), strict=True):
                stats[k].append(float(v.detach()))
        return {k: sum(v) / len(v) for k, v in stats.items()}

    # --- evaluation ------------------------------------------------------------------------------
    def eval_step_sizes(self) -> list[StepSize]:
        c = self.config
        base: StepSize = self.inner_lr()
        if c.eval_inner_lr is not None:
            base = (
                c.eval_inner_lr
                if isinstance(base, float)
                else {n: a * (c.eval_inner_lr / c.inner_lr) for n, a in base.items()}
            )
        if not isinstance(base, float):
            base = {n: a.detach() for n, a in base.items()}
        return step_size_schedule(base, c.eval_lr_multipliers, c.eval_num_steps)

    def adaptation_curve(
        self, env: BatchedEnv, tasks: TaskBatch, generator: torch.Generator
    ) -> AdaptationCurve:
        """Return after 0..``eval_num_steps`` inner steps, ``eval_episodes`` trajectories each."""
        c = self.config
        return self.rule.curve(
            self.policy,
            env,
            tasks,
            self.eval_step_sizes(),
            generator,
            c.eval_episodes,
            batch_steps=c.eval_batch_steps,
            batch_mode=c.eval_batch_mode,
        )


def _tracks_grad(chain: list[Params]) -> bool:
    """Whether the adapted parameters of ``chain`` carry a graph back to the meta-parameters."""
    return next(iter(chain[-1].values())).requires_grad


#: ``v -> H v`` on task-stacked parameter dicts.
_Product = Callable[[Params], Params]


def _autograd_hvp(at: Params, grads: list[torch.Tensor]) -> _Product:
    """Per-task Hessian-vector products by differentiating ``grads`` (taken with the graph at
    the leaves ``at``) again; task i's loss depends on row i only."""

    def hvp(u: Params) -> Params:
        with torch.enable_grad():
            dot = torch.stack([(g * u[k]).sum() for k, g in zip(at, grads, strict=True)]).sum()
            out = torch.autograd.grad(dot, list(at.values()), retain_graph=True, allow_unused=True)
        return {
            k: torch.zeros_like(a) if h is None else h
            for (k, a), h in zip(at.items(), out, strict=True)
        }

    return hvp


def _closed_form_steps(
    policy: MLPPolicy,
    points: list[Params],
    support: list[StepBatch],
    query: StepBatch,
    lrs: list[float],
) -> tuple[list[tuple[_Product, float]], _Product]:
    """The inner Hessians and the Fisher at ``points`` in closed form (:mod:`metarl.curvature`):
    the same products as :meth:`MAML._autograd_steps`."""
    assert isinstance(policy, GaussianMLPPolicy)
    steps: list[tuple[_Product, float]] = [
        (
            PolicyGradientHessian(policy, at, b.obs, b.actions, -b.weight * b.advantages),
            lr,
        )
        for at, b, lr in zip(points[:-1], support, lrs, strict=True)
    ]
    fisher = GaussianFisher(policy, points[-1], query.obs, query.weight, 1.0 / query.num_tasks)
    return steps, fisher


# --- the named variants: the same class, a different default for one part ---------------------
@dataclass
class MAMLTRPOConfig(MAMLConfig):
    """MAML-TRPO: the MAML paper's RL algorithm (second-order meta-gradient, TRPO outer)."""


@dataclass
class MAMLPPOConfig(MAMLConfig):
    """MAML with a clipped-surrogate (PPO) outer loop, several Adam steps per meta-batch."""

    outer: Literal["trpo", "ppo", "reptile"] = "ppo"


@dataclass
class FOMAMLConfig(MAMLConfig):
    """First-order MAML: no Hessian-vector products through the inner step."""

    first_order: bool = True


@dataclass
class MetaSGDConfig(MAMLConfig):
    """Meta-SGD: per-parameter inner step sizes learned with TRPO alongside the weights."""

    meta_sgd: bool = True


@dataclass
class ProMPConfig(MAMLConfig):
    """ProMP (Rothfuss et al. 2019): LVC inner objective, clipped outer objective (clip 0.3,
    5 Adam steps of 1e-3) and an inner KL penalty of 5e-4."""

    inner_objective: InnerObjective = "lvc"
    outer: Literal["trpo", "ppo", "reptile"] = "ppo"
    clip_coef: float = 0.3
    inner_kl_coef: float = 5e-4


class MAMLTRPO(MAML):
    Config = MAMLTRPOConfig


class MAMLPPO(MAML):
    Config = MAMLPPOConfig


class FOMAML(MAML):
    Config = FOMAMLConfig


class MetaSGD(MAML):
    Config = MetaSGDConfig


class ProMP(MAML):
    Config = ProMPConfig
