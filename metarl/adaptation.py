"""The MAML family's inner loop: functional, batched across the tasks of a meta-batch.

MAML (Finn et al. 2017, arXiv:1703.03400, section 3.2) adapts the meta-parameters ``theta`` to
task ``i`` with a policy-gradient step on that task's own trajectories,

    theta_i' = theta - alpha * grad L_i(theta),      L_i = -mean_t log pi(a_t | s_t) A_t,

where the advantages come from a linear feature baseline fitted per task (the paper's appendix:
"vanilla policy gradient (REINFORCE) with a linear feature baseline"). Every function here works
on parameters stacked on a leading task axis (``{name: [task, ...]}``), so the inner step of the
whole meta-batch is one vmapped forward and one ``torch.autograd.grad`` (DESIGN.md, Policy): the
per-task losses are summed, and since task ``i``'s loss depends only on row ``i`` of the stacked
parameters, the gradient with respect to the stack is the stack of per-task gradients.

With ``create_graph=True`` the adapted parameters stay differentiable functions of ``theta``
(second-order MAML); with ``create_graph=False`` the inner gradient is a constant and
``d theta' / d theta = I``, which is first-order MAML (FOMAML, the paper's section 5.2 ablation).
Step sizes are a float (the paper), or a dict of per-parameter tensors learned in the outer loop
(Meta-SGD, Li et al. 2017, arXiv:1707.09835).

Two inner objectives share the same gradient at the sampling policy but not the same Hessian:

* ``vpg``: ``log pi * A``, the MAML paper's objective;
* ``lvc``: ``pi / pi_old * A``, ProMP's low-variance curvature objective (Rothfuss et al. 2019,
  arXiv:1810.06784, section 5), whose Hessian carries the score-function term the ``vpg``
  objective drops, and which stays a valid importance-weighted objective when ``theta`` moves
  away from the sampling policy during several outer steps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch.distributions import Distribution

from metarl.env import BatchedEnv
from metarl.evaluation import AdaptationCurve
from metarl.policies import MLPPolicy, Params, sample_action
from metarl.returns import LinearFeatureBaseline, discounted_returns, gae
from metarl.sampling import Actor, Trajectory, keep_completed, rollout
from metarl.tasks import TaskBatch

__all__ = [
    "InnerObjective",
    "BatchMode",
    "StepSize",
    "StepBatch",
    "InnerRule",
    "check_eval_batch",
    "expand_params",
    "make_actor",
    "step_size_schedule",
    "kl_per_task",
    "detach_distribution",
]

InnerObjective = Literal["vpg", "lvc"]
BatchMode = Literal["share", "lockstep"]
"""How a step budget becomes a batch (see :meth:`InnerRule.curve`)."""
#: A step size: one float for every parameter, or one tensor per parameter (Meta-SGD).
StepSize = float | Mapping[str, torch.Tensor]


@dataclass
class StepBatch:
    """The samples of one inner step (or of the query set), per task: ``[task, sample, ...]``.

    ``sample`` flattens the ``[env, time]`` steps of a task's trajectories; padding steps (after
    an early-terminated episode) keep a zero ``weight``. ``weight`` is 1 / (valid steps of the
    task) on valid steps, so ``(x * weight).sum(-1)`` is each task's mean over its valid steps.
    """

    obs: torch.Tensor  # [task, N, obs_dim]
    actions: torch.Tensor  # [task, N, act_dim] (Box) or [task, N] (Discrete)
    advantages: torch.Tensor  # [task, N]
    log_probs: torch.Tensor  # [task, N] under the policy that sampled them
    weight: torch.Tensor  # [task, N]

    @property
    def num_tasks(self) -> int:
        return self.obs.shape[0]

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """``[task, N] -> [task]``: per-task mean over valid steps."""
        return (x * self.weight).sum(-1)

    def subsample(self, fraction: float, generator: torch.Generator) -> StepBatch:
        """The same random ``fraction`` of sample slots of every task, weights renormalized."""
        n = self.obs.shape[1]
        m = max(1, min(n, round(fraction * n)))
        if m == n:
            return self
        idx = torch.randperm(n, generator=generator)[:m].to(self.obs.device)
        w = self.weight[:, idx]
        w = w / w.sum(-1, keepdim=True).clamp(min=torch.finfo(w.dtype).tiny)
        return StepBatch(
            self.obs[:, idx],
            self.actions[:, idx],
            self.advantages[:, idx],
            self.log_probs[:, idx],
            w,
        )


def expand_params(params: Mapping[str, torch.Tensor], num_tasks: int) -> Params:
    """Shared parameters viewed with a leading task axis (no copy; gradients flow to the source).

    The gradient of a sum of per-task losses with respect to the *expanded* tensor is the stack of
    per-task gradients, which is what makes one ``autograd.grad`` serve the whole meta-batch.
    """
    return {k: v.unsqueeze(0).expand(num_tasks, *v.shape) for k, v in params.items()}


def step_size_schedule(
    base: StepSize, multipliers: Sequence[float], num_steps: int
) -> list[StepSize]:
    """Step sizes of ``num_steps`` inner steps: ``base * multipliers[k]``, the last multiplier
    repeated. ``(1.0, 0.5)`` halves the step after the first, as the MAML paper's test scripts
    for 2D navigation did (step 0.5, then 0.25; ANCHORS.md section 3)."""
    if not multipliers:
        raise ValueError("multipliers must hold at least one factor, e.g. (1.0,)")
    out: list[StepSize] = []
    for k in range(num_steps):
        m = float(multipliers[min(k, len(multipliers) - 1)])
        out.append(
            base * m if isinstance(base, float | int) else {n: v * m for n, v in base.items()}
        )
    return out


def check_eval_batch(
    batch_steps: int | None, batch_envs: int, batch_mode: str = "share"
) -> int | None:
    """Validate ``eval_batch_steps`` / ``eval_batch_envs`` / ``eval_batch_mode``; the
    environments per task they need (None when ``batch_steps`` is unset: whole trajectories)."""
    if batch_mode not in ("share", "lockstep"):
        raise ValueError(f"eval_batch_mode={batch_mode!r} must be 'share' or 'lockstep'")
    if batch_steps is None:
        if batch_mode != "share":
            raise ValueError(
                f"eval_batch_mode={batch_mode!r} needs eval_batch_steps (a step budget per task); "
                "without one each point is eval_episodes whole trajectories"
            )
        return None
    if not isinstance(batch_envs, int) or batch_envs < 1:
        raise ValueError(f"eval_batch_envs={batch_envs!r} must be a positive int")
    if not isinstance(batch_steps, int) or batch_steps < 1 or batch_steps % batch_envs:
        raise ValueError(
            f"eval_batch_steps={batch_steps!r} must be a positive multiple of "
            f"eval_batch_envs={batch_envs} (each environment gets an equal share), or unset"
        )
    return batch_envs


def make_actor(
    policy: MLPPolicy, params: Params | None, num_tasks: int, generator: torch.Generator
) -> Actor:
    """A rollout actor for ``policy``; ``params`` stacked per task, or None for the module's own.

    Rows of the env are task-major (``row = task * envs_per_task + j``), so a reshape to
    ``[task, envs_per_task, obs]`` lines every row up with its task's weights. No host sync.
    """

    def act(obs: torch.Tensor, *_: object) -> tuple[torch.Tensor, torch.Tensor, None, None]:
        o = obs.reshape(num_tasks, -1, *obs.shape[1:]).to(_dtype(policy))
        dist = policy.distribution(o) if params is None else policy.distribution(o, params, True)
        action = sample_action(dist, generator)
        return action.flatten(0, 1), dist.log_prob(action).flatten(0, 1), None, None

    return act


def _dtype(policy: MLPPolicy) -> torch.dtype:
    return next(policy.parameters()).dtype


@dataclass(frozen=True)
class InnerRule:
    """How a task's trajectories become an adapted policy: advantages, inner loss, inner step.

    Defaults follow the MAML paper's point-navigation and locomotion settings as run by the widely
    used reproduction (gamma 0.99, GAE lambda 1.0 i.e. Monte-Carlo returns minus the linear
    baseline, advantages standardized per task as rllab's ``center_adv`` does).
    """

    objective: InnerObjective = "vpg"
    gamma: float = 0.99
    gae_lambda: float = 1.0
    normalize_advantages: bool = True
    baseline_reg: float = 1e-5
    baseline: Literal["linear", "none"] = "linear"
    """``linear``: the per-task linear feature baseline, fitted on the batch it scores; ``none``:
    advantages are the returns (standardized if ``normalize_advantages``)."""

    # --- data -------------------------------------------------------------------------------
    @torch.no_grad()
    def process(self, traj: Trajectory, dtype: torch.dtype = torch.float32) -> StepBatch:
        """Advantages (against the per-task linear baseline unless ``baseline`` is ``none``) and
        step weights of a ``[task, env, time]`` batch."""
        rewards = traj.rewards.to(dtype)
        obs = traj.obs.to(dtype)
        mask = traj.mask
        returns = discounted_returns(rewards, traj.dones, self.gamma)
        if self.baseline == "linear":
            values = LinearFeatureBaseline(self.baseline_reg).fit_predict(
                obs, traj.step, returns, mask
            )
        else:
            values = torch.zeros_like(returns)
        adv = gae(rewards, values, traj.dones, self.gamma, self.gae_lambda)
        m = mask.to(dtype)
        count = m.sum((1, 2), keepdim=True).clamp(min=1.0)
        if self.normalize_advantages:
            mu = (adv * m).sum((1, 2), keepdim=True) / count
            var = (((adv - mu) * m) ** 2).sum((1, 2), keepdim=True) / count
            adv = (adv - mu) / (var.sqrt() + 1e-8)
        adv = adv * m
        actions = traj.actions if not traj.actions.is_floating_point() else traj.actions.to(dtype)
        return StepBatch(
            obs.flatten(1, 2),
            actions.flatten(1, 2),
            adv.flatten(1, 2),
            traj.log_probs.to(dtype).flatten(1, 2),
            (m / count).flatten(1, 2),
        )

    # --- the inner objective and step -------------------------------------------------------
    def loss(self, policy: MLPPolicy, params: Params, batch: StepBatch) -> torch.Tensor:
        """``[task]`` inner losses of task-stacked ``params`` on their own task's samples."""
        logp = policy.distribution(batch.obs, params, task_batched=True).log_prob(batch.actions)
        if self.objective == "vpg":
            surrogate = logp
        else:  # lvc: the likelihood ratio to the sampling policy (ProMP, eq. 11)
            surrogate = torch.exp(logp - batch.log_probs)
        return -batch.mean(surrogate * batch.advantages)

    def gradients(
        self, policy: MLPPolicy, params: Params, batch: StepBatch, create_graph: bool
    ) -> list[torch.Tensor]:
        """``grad L_i`` of every task's inner loss with respect to its row of the task-stacked
        ``params`` (which require grad), from one ``autograd.grad`` of the summed losses."""
        loss = self.loss(policy, params, batch).sum()  # sum over tasks: row i gets grad L_i
        return list(torch.autograd.grad(loss, list(params.values()), create_graph=create_graph))

    def step(
        self, policy: MLPPolicy, params: Params, batch: StepBatch, lr: StepSize, create_graph: bool
    ) -> Params:
        """One gradient step for every task at once: ``theta_i - lr * grad L_i(theta_i)``.

        ``params`` are task-stacked. Called under ``torch.no_grad`` (evaluation, sampling) the
        parameters become fresh leaves, so the step works there and the result carries no graph
        back to the caller's tensors.
        """
        tracked = torch.is_grad_enabled()
        with torch.enable_grad():
            params = {
                k: v if tracked and v.requires_grad else v.detach().requires_grad_()
                for k, v in params.items()
            }
            grads = self.gradients(policy, params, batch, create_graph)
        out = {}
        for (name, p), g in zip(params.items(), grads, strict=True):
            alpha = lr if isinstance(lr, float | int) else lr[name]
            out[name] = p - alpha * g
        return out

    def adapt(
        self,
        policy: MLPPolicy,
        params: Params,
        batches: Sequence[StepBatch],
        lrs: Sequence[StepSize],
        create_graph: bool,
    ) -> list[Params]:
        """Inner steps on fixed data: ``[theta_0, theta_1, ..., theta_K]`` (``theta_0 = params``).

        The outer objective recomputes the inner steps on the trajectories sampled earlier (one
        batch per step, each drawn from the policy adapted so far) so that the meta-gradient
        flows through them.
        """
        chain = [params]
        for batch, lr in zip(batches, lrs, strict=True):
            chain.append(self.step(policy, chain[-1], batch, lr, create_graph))
        return chain

    # --- evaluation: the adaptation curve -----------------------------------------------------
    @torch.no_grad()
    def curve(
        self,
        policy: MLPPolicy,
        env: BatchedEnv,
        tasks: TaskBatch,
        lrs: Sequence[StepSize],
        generator: torch.Generator,
        episodes: int,
        params: Params | None = None,
        batch_steps: int | None = None,
        batch_mode: BatchMode = "share",
    ) -> AdaptationCurve:
        """Return after 0, 1, ..., ``len(lrs)`` inner steps on each task of ``tasks``.

        At every point the policy samples ``episodes`` fresh trajectories per task (40 per step
        on 2D navigation in the MAML paper); their mean return is the point's score, and they are
        the data of the next inner step. ``params`` (shared, no task axis) default to the
        policy's own weights.

        With ``batch_steps``, a point is instead a batch of whole episodes holding at least
        ``batch_steps`` environment steps per task, and its score the mean over the batch's
        episodes. ``batch_mode`` says how the task's environments fill it, each running episodes
        back to back:

        * ``share``: each environment runs until it has its equal share of the steps and
          finishes the episode it is in (rllab's parallel batch sampler);
        * ``lockstep``: the environments step together until the episodes they have completed
          hold ``batch_steps`` steps, and the episodes still running are dropped
          (:func:`metarl.sampling.keep_completed`; rllab's ``VectorizedSampler``, which the MAML
          paper's test script ran with 40 environments for 4000 steps).

        Where episodes end early on success, fast episodes are more numerous in such a batch
        than among whole trajectories, the more so in ``lockstep`` (a slow episode still running
        at the end is dropped), and the score is higher than the whole-trajectory mean.
        """
        if batch_steps is not None and batch_steps % env.envs_per_task:
            raise ValueError(
                f"batch_steps={batch_steps} must be a multiple of the environments per task "
                f"({env.envs_per_task})"
            )
        env.set_tasks(tasks)
        num_tasks = len(tasks)
        per_env = math.ceil(episodes / env.envs_per_task)
        per_env_steps = None if batch_steps is None else batch_steps // env.envs_per_task
        gen = _device_generator(generator, env.device)
        base = {k: v.detach() for k, v in (params or policy.params()).items()}
        theta = expand_params(base, num_tasks)
        dtype = _dtype(policy)
        scores, steps = [], 0
        for k in range(len(lrs) + 1):
            actor = make_actor(policy, theta, num_tasks, gen)
            traj = rollout(env, actor, per_env, min_steps=per_env_steps)
            if batch_steps is not None and batch_mode == "lockstep":
                traj = keep_completed(traj, batch_steps)
            scores.append(traj.mean_episode_return())  # [task]
            steps += traj.num_steps
            if k < len(lrs):
                batch = self.process(traj, dtype)
                theta = {
                    n: v.detach()
                    for n, v in self.step(policy, theta, batch, lrs[k], create_graph=False).items()
                }
        return AdaptationCurve(torch.stack(scores, dim=1).cpu(), "gradient_step", env_steps=steps)


def _device_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """``generator`` itself on its device, else a generator on ``device`` seeded from it."""
    if generator.device == device or (generator.device.type == device.type == "cpu"):
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


def kl_per_task(old: Distribution, new: Distribution, batch: StepBatch) -> torch.Tensor:
    """``[task]`` mean KL(old || new) over each task's valid steps."""
    return batch.mean(torch.distributions.kl_divergence(old, new))


def detach_distribution(dist: Distribution) -> Distribution:
    """A copy of a Gaussian or categorical policy distribution that carries no graph."""
    from torch.distributions import Categorical, Independent, Normal

    if isinstance(dist, Independent) and isinstance(dist.base_dist, Normal):
        base = dist.base_dist
        return Independent(
            Normal(base.loc.detach(), base.scale.detach()), dist.reinterpreted_batch_ndims
        )
    if isinstance(dist, Categorical):
        return Categorical(logits=dist.logits.detach())
    raise TypeError(f"detach_distribution does not know {type(dist).__name__}")
