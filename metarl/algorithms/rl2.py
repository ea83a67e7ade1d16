"""RL²: fast reinforcement learning via slow reinforcement learning (Duan et al. 2016,
arXiv:1611.02779).

A recurrent policy is trained with an ordinary RL algorithm (here PPO, as in most modern
reproductions; the paper used TRPO) on *trials*: a trial is ``episodes_per_trial`` episodes of one
task, and the GRU's hidden state carries across the episodes of a trial, resetting only when a new
trial (a new task) starts. The policy sees (observation, previous action, previous reward, done
flag), so the "fast" learner is the GRU's state update, and the "slow" learner is PPO on the
weights. The objective is the discounted return of the whole trial, so exploring in early
episodes pays off in later ones.

One ``train_step``:

1. draw ``tasks_per_iteration`` train tasks and run one trial in each (all trials in one batched
   rollout; the hidden state starts at zero at the first step and is never reset inside it);
2. GAE over each trial as a single sequence: the only terminal is the end of the trial, episode
   boundaries inside it are not (the value of the next episode's first state is the future of the
   trial, which is what exploration is for);
3. PPO epochs over whole trials: minibatches are drawn along the trial axis and the GRU is re-run
   over each trial from a zero state, so each sequence is evaluated exactly as it was acted.
   Trials longer than ``bptt_length`` are cut into chunks that start from the hidden state the
   behaviour policy had there (truncated BPTT); the config says so when it is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from metarl.algorithms.base import Algorithm
from metarl.algorithms.ppo import PPOBatch, PPOConfig, masked_mean, ppo_update
from metarl.env import BatchedEnv
from metarl.evaluation import AdaptationCurve
from metarl.policies import RecurrentActorCritic, sample_action
from metarl.returns import gae
from metarl.sampling import Trajectory, rollout
from metarl.tasks import TaskBatch

__all__ = ["RL2", "RL2Config", "ReturnNormalizer", "trial_dones"]


def _rl2_ppo() -> PPOConfig:
    # ANCHORS.md 1 (the authors' launchers): gamma 0.99, GAE lambda 0.3.
    return PPOConfig(
        learning_rate=1e-3, epochs=4, num_minibatches=4, ent_coef=0.01, gamma=0.99, gae_lambda=0.3
    )


@dataclass
class RL2Config:
    """Hyperparameters of RL²."""

    tasks_per_iteration: int = 1000
    """Trials per iteration: one task each, all run in one batched rollout."""
    envs_per_task: int = 1
    """Independent trials per task and iteration."""
    episodes_per_trial: int = 10
    """Episodes of one task the hidden state carries across (n in the RL² paper's tables)."""
    hidden_size: int = 256
    """GRU units (256 in the paper)."""
    init_std: float = 1.0
    """Initial standard deviation of Gaussian (continuous-action) policies."""
    bptt_length: int | None = None
    """Truncated BPTT: chunk trials longer than this many steps (None: whole trials)."""
    normalize_values: bool = True
    """Learn values in units of a running standard deviation of the trial returns."""
    ent_anneal_steps: int | None = None
    """Decay the entropy bonus linearly from ``ppo.ent_coef`` to 0 over this many env steps
    (None: constant). A large early bonus keeps the policy from committing to an arm before it
    has learned to explore; annealing it lets the final policy exploit."""
    lr_anneal_steps: int | None = None
    """Decay the learning rate linearly to 0 over this many env steps (None: constant), so the
    large early steps that learn fast do not keep the final policy jittering."""
    eval_episodes: int | None = None
    """Episodes per evaluation trial (None: ``episodes_per_trial``)."""
    eval_deterministic: bool = False
    """Act greedily (mode of the policy) at evaluation instead of sampling."""
    transition_key: bool = False
    """Add the previous observation times the previous action (outer product) and its product
    with the previous reward to the GRU input (``RecurrentActorCritic``). Off: the paper's
    input. On tabular MDPs it is the (state, action) key of the reward, which the GRU does not
    learn to form from memory (experiments/results/rl2.md)."""
    obs_head: int = 0
    """Units of a ReLU layer over [GRU output, current observation] under the policy and value
    heads (0: the heads read the GRU output directly, as in the paper)."""
    reward_aux_coef: float = 0.0
    """Weight of an auxiliary loss (0: off, the paper's agent): a linear head on the policy's
    features predicts the reward of each action, trained by squared error on the reward each
    action taken received (discrete actions only). The best prediction is the posterior mean of
    that reward given the trial so far, so the loss teaches the memory to keep the reward
    estimates a tabular learner keeps, with a supervised signal instead of through the policy
    gradient alone (experiments/results/rl2.md)."""
    ppo: PPOConfig = field(default_factory=_rl2_ppo)
    """The PPO update over trial sequences."""


def trial_dones(traj: Trajectory) -> torch.Tensor:
    """``[task, env, time]`` true at the last step of each trial (the end of its last episode).

    Episode ends inside the trial are *not* terminal for RL²: the return being maximised is the
    whole trial's (Duan et al. 2016, section 2.2).
    """
    return traj.dones & (traj.episode == traj.num_episodes - 1)


class ReturnNormalizer(nn.Module):
    """Running variance of value targets (Welford over batches), kept as checkpointed buffers.

    The critic predicts ``V / std``: trial returns range from ~5 (10 pulls) to ~100 (discounted
    500 pulls, MDP trials), and an unscaled value loss would swamp the policy gradient through the
    shared GRU under the global gradient-norm clip.
    """

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("var", torch.ones((), dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @property
    def std(self) -> torch.Tensor:
        return self.var.sqrt().clamp(min=1e-4).float()

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Pool the mean and (population) variance of ``x`` into the running statistics."""
        x = x.double()
        n = float(x.numel())
        mean, var = x.mean(), x.var(unbiased=False)
        count = self.count
        total = count + n
        delta = mean - self.mean
        new_var = (self.var * count + var * n + delta * delta * count * n / total) / total
        self.mean.add_(delta * n / total)
        self.var.copy_(new_var)
        self.count.copy_(total)


class RL2(Algorithm):
    """RL² with a GRU actor-critic and PPO over whole trials."""

    Config = RL2Config

    def __init__(self, env_id: str, config: RL2Config, **kwargs: Any):
        super().__init__(env_id, config, **kwargs)
        c = config
        if c.bptt_length is not None and c.bptt_length < 1:
            raise ValueError(f"bptt_length={c.bptt_length} must be >= 1 or None")
        if c.obs_head < 0:
            raise ValueError(f"obs_head={c.obs_head} must be >= 0 (units; 0: no head layer)")
        if not (isinstance(c.reward_aux_coef, (int, float)) and c.reward_aux_coef >= 0):
            raise ValueError(
                f"reward_aux_coef={c.reward_aux_coef!r} must be a number >= 0 (0: off)"
            )
        self.env = self.make_env(c.tasks_per_iteration, c.envs_per_task)
        self.net = RecurrentActorCritic(
            self.env.single_observation_space,
            self.env.single_action_space,
            c.hidden_size,
            c.init_std,
            c.transition_key,
            c.obs_head,
            reward_head=c.reward_aux_coef > 0,
        ).to(self.device)
        self.value_norm = ReturnNormalizer().to(self.device)
        self._action_scale = self._action_normalizer(self.env.single_action_space)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=c.ppo.learning_rate, eps=1e-5)
        self.track(net=self.net, value_norm=self.value_norm, optimizer=self.optimizer, env=self.env)

    def _action_normalizer(self, space: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(low, high) of a bounded Box action space, else None."""
        low, high = getattr(space, "low", None), getattr(space, "high", None)
        if self.net.discrete or low is None or high is None:
            return None
        low_t = torch.as_tensor(low, dtype=torch.float32, device=self.device)
        high_t = torch.as_tensor(high, dtype=torch.float32, device=self.device)
        if not (torch.isfinite(low_t).all() and torch.isfinite(high_t).all()):
            return None
        return low_t, high_t

    def policy_input(
        self,
        obs: torch.Tensor,
        prev_action: torch.Tensor,
        prev_reward: torch.Tensor,
        prev_done: torch.Tensor,
        prev_obs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The GRU input; a bounded continuous previous action enters as the action the env
        executed (clipped to the bounds), rescaled to [-1, 1], so a Gaussian sample far outside
        the box cannot blow up the recurrent state (point navigation clips at 0.1)."""
        if self._action_scale is not None:
            low, high = self._action_scale
            a = torch.minimum(torch.maximum(prev_action.float(), low), high)
            prev_action = (2 * a - (high + low)) / (high - low)
        return self.net.build_input(
            obs.float(),
            prev_action,
            prev_reward.float(),
            prev_done,
            None if prev_obs is None else prev_obs.float(),
        )

    # --- acting ---------------------------------------------------------------------------
    def make_actor(
        self,
        generator: torch.Generator,
        deterministic: bool = False,
        record_every: int | None = None,
    ) -> tuple[Any, list[torch.Tensor]]:
        """The rollout actor; the hidden state is fresh (zero) at the first step of the rollout,
        i.e. at the start of every trial, and carried across its episodes. With
        ``transition_key`` the state it hands the rollout is ``(hidden, observation)``, so the
        next step knows where the previous action was taken.

        With ``record_every``, the hidden state before steps ``0, L, 2L, ...`` is appended to the
        returned list (the starting states of truncated-BPTT chunks).
        """
        recorded: list[torch.Tensor] = []
        counter = [0]

        def act(
            obs: torch.Tensor,
            prev_action: torch.Tensor,
            prev_reward: torch.Tensor,
            prev_done: torch.Tensor,
            state: Any,
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any]:
            keyed = self.net.transition_key
            if state is None:  # the first step of a trial
                hidden = self.net.initial_state(obs.shape[0], obs.device)
                prev_obs = torch.zeros_like(obs) if keyed else None
            else:
                hidden, prev_obs = state if keyed else (state, None)
            if record_every is not None and counter[0] % record_every == 0:
                recorded.append(hidden)
            counter[0] += 1
            x = self.policy_input(obs, prev_action, prev_reward, prev_done, prev_obs)
            dist, value, hidden = self.net.step(x, hidden)
            if deterministic:
                action = dist.mode
            else:
                action = sample_action(dist, generator)
            out_state = (hidden, obs) if keyed else hidden
            return action, dist.log_prob(action), value * self.value_norm.std, out_state

        return act, recorded

    # --- learning -------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        c = self.config
        self.env.set_tasks(self.sample_tasks(c.tasks_per_iteration))
        with torch.no_grad():
            act, h0 = self.make_actor(self.action_generator, record_every=c.bptt_length)
            traj = rollout(self.env, act, c.episodes_per_trial)  # [task, env, time]
        seqs = self._sequences(traj, h0)

        def evaluate(idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
            x = seqs["inputs"][idx].transpose(0, 1)  # [time, seq, in]
            h = None if seqs["h0"] is None else seqs["h0"][idx]
            dist, value, features = self.net.sequence(x, h)  # over [time, seq]
            act = seqs["actions"][idx].transpose(0, 1)
            logp, ent = dist.log_prob(act), dist.entropy()
            if not c.reward_aux_coef:
                return logp.T, ent.T, value.T
            aux = self.reward_prediction_loss(
                features, act, seqs["rewards"][idx].T, seqs["batch"].mask[idx].T
            )
            return logp.T, ent.T, value.T, c.reward_aux_coef * aux

        ppo_cfg = c.ppo
        if c.lr_anneal_steps:
            lr = c.ppo.learning_rate * max(0.0, 1.0 - self.env_steps / c.lr_anneal_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        if c.ent_anneal_steps:
            frac = max(0.0, 1.0 - self.env_steps / c.ent_anneal_steps)
            ppo_cfg = replace(c.ppo, ent_coef=c.ppo.ent_coef * frac)
        metrics = ppo_update(
            evaluate, seqs["batch"], self.net.parameters(), self.optimizer, ppo_cfg, self.generator
        )
        metrics["optim/ent_coef"] = ppo_cfg.ent_coef
        metrics["optim/learning_rate"] = self.optimizer.param_groups[0]["lr"]
        steps = traj.num_steps
        self.env_steps += steps
        self.iteration += 1
        return {**metrics, **self._return_metrics(traj), "env_steps": float(steps)}

    def reward_prediction_loss(
        self,
        features: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """Mean squared error of the predicted reward of each action taken, over unmasked
        steps (every tensor ``[time, seq, ...]``)."""
        pred = self.net.predict_rewards(features)  # [time, seq, action]
        taken = pred.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        return masked_mean((taken - rewards.to(taken.dtype)) ** 2, mask)

    def _sequences(self, traj: Trajectory, h0: list[torch.Tensor]) -> dict[str, Any]:
        """PPO data as ``[sequence, time]``: one sequence per trial (or per BPTT chunk)."""
        p = self.config.ppo
        assert traj.values is not None
        mask = traj.mask
        rewards = traj.rewards * mask.to(traj.rewards.dtype)
        adv = gae(rewards, traj.values, trial_dones(traj), p.gamma, p.gae_lambda)
        returns = adv + traj.values
        if self.config.normalize_values:
            self.value_norm.update(returns[mask])
        scale = self.value_norm.std  # the critic's unit (after this batch's update)
        inputs = self.policy_input(
            traj.obs,
            traj.shifted(traj.actions),
            traj.shifted(traj.rewards),
            traj.shifted(traj.dones),
            traj.shifted(traj.obs) if self.net.transition_key else None,
        )
        flat = {
            "inputs": inputs,
            "actions": traj.actions,
            "rewards": rewards,
            "log_probs": traj.log_probs,
            "adv": adv,
            "returns": returns / scale,
            "values": traj.values / scale,
            "mask": mask,
        }
        flat = {k: v.flatten(0, 1) for k, v in flat.items()}  # [task*env, time, ...]
        h = None
        L = self.config.bptt_length
        T = flat["mask"].shape[1]
        if L is not None and L < T:
            chunks = math.ceil(T / L)
            pad = chunks * L - T

            def cut(x: torch.Tensor) -> torch.Tensor:  # [seq, T, ...] -> [seq*chunks, L, ...]
                if pad:
                    x = torch.cat([x, x.new_zeros(x.shape[0], pad, *x.shape[2:])], dim=1)
                return x.reshape(x.shape[0], chunks, L, *x.shape[2:]).flatten(0, 1)

            flat = {k: cut(v) for k, v in flat.items()}
            h = torch.stack(h0, dim=1).flatten(0, 1)  # [seq*chunks, H], behaviour-policy states
        batch = PPOBatch(
            log_probs=flat["log_probs"],
            advantages=flat["adv"],
            returns=flat["returns"],
            values=flat["values"],
            mask=flat["mask"],
        )
        return {
            "inputs": flat["inputs"],
            "actions": flat["actions"],
            "rewards": flat["rewards"],
            "h0": h,
            "batch": batch,
        }

    def _return_metrics(self, traj: Trajectory) -> dict[str, float]:
        """Mean return per episode index of the trial (all of them up to 20 episodes, else 10
        evenly spaced indices, first and last included) and the mean trial return."""
        per_episode = traj.episode_returns().mean(dim=(0, 1))  # [episode]
        k = per_episode.shape[0]
        shown = range(k) if k <= 20 else sorted({round(i * (k - 1) / 9) for i in range(10)})
        values = per_episode.tolist()
        out = {f"meta_train/return_episode_{i + 1}": values[i] for i in shown}
        out["meta_train/trial_return"] = float(per_episode.sum())
        out["meta_train/return"] = float(per_episode.mean())
        return out

    # --- evaluation -----------------------------------------------------------------------
    @torch.no_grad()
    def adaptation_curve(
        self, env: BatchedEnv, tasks: TaskBatch, generator: torch.Generator
    ) -> AdaptationCurve:
        """One trial per task (and env) from a fresh hidden state; the return of each episode.

        ``axis="episode"``: point i is the return of episode i of the trial, so the curve shows
        what the hidden state learned about the task, and its sum is the RL² paper's score.
        """
        env.set_tasks(tasks)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        gen = torch.Generator(device=env.device).manual_seed(seed)
        act, _ = self.make_actor(gen, deterministic=self.config.eval_deterministic)
        k = self.config.eval_episodes or self.config.episodes_per_trial
        traj = rollout(env, act, k, seed=seed % (2**31))
        returns = traj.episode_returns().mean(dim=1)  # [task, episode]
        return AdaptationCurve(returns, "episode", env_steps=traj.num_steps)
