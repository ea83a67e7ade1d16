"""Policies with functional parameters.

Feed-forward policies map observations to distribution parameters; their weights are used
through :func:`torch.func.functional_call`, so MAML's inner loop evaluates adapted weights without
ever mutating the module. :meth:`MLPPolicy.distribution` takes plain weights (``{name: tensor}``)
or weights stacked on a leading task axis (``{name: [task, ...]}``), the latter evaluated for
every task at once with :func:`torch.func.vmap`.

:class:`RecurrentActorCritic` is the RL² agent: a GRU whose input it builds itself from
(observation, previous action, previous reward, done flag), identically on every backend, and
whose hidden state the caller resets only at trial boundaries.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal

import gymnasium as gym
import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, Normal
from torch.func import functional_call, vmap

__all__ = [
    "MLPPolicy",
    "GaussianMLPPolicy",
    "CategoricalMLPPolicy",
    "make_mlp_policy",
    "WeightInit",
    "RecurrentActorCritic",
    "Params",
    "space_dim",
    "sample_action",
]

Params = dict[str, torch.Tensor]
Activation = Literal["relu", "tanh"]
WeightInit = Literal["torch", "xavier"]
"""Initial weights of an MLP's linear layers: ``torch``, PyTorch's ``nn.Linear`` default
(Kaiming-uniform weights with a = sqrt(5), uniform biases); ``xavier``, Glorot-uniform weights
and zero biases (the TensorFlow initializers of the official MAML code's policies)."""

# Distribution argument validation costs a host sync per call; shapes are checked by the envs.
Distribution.set_default_validate_args(False)


def space_dim(space: gym.Space) -> int:
    """Flat size of an observation space, or the number of actions / action dims."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    return int(math.prod(space.shape or (1,)))


def sample_action(dist: Distribution, generator: torch.Generator) -> torch.Tensor:
    """Draw from a policy distribution with an explicit generator (``Distribution.sample`` only
    reads the global RNG). Categorical: Gumbel-max; Gaussian: reparameterised normal draw."""
    if isinstance(dist, Categorical):
        logits = dist.logits
        u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
        gumbel = -torch.log(-torch.log(u.clamp(min=torch.finfo(u.dtype).tiny)))
        return (logits + gumbel).argmax(dim=-1)
    base = dist.base_dist if isinstance(dist, Independent) else dist
    if isinstance(base, Normal):
        eps = torch.randn(
            base.loc.shape, generator=generator, device=base.loc.device, dtype=base.loc.dtype
        )
        return base.loc + base.scale * eps
    raise TypeError(f"sample_action does not know {type(dist).__name__}")


def _batched_mlp(seq: nn.Sequential, prefix: str, params: Params, x: torch.Tensor) -> torch.Tensor:
    """``seq`` applied with task-stacked weights: ``x [task, N, in]``, ``params[...] [task, ...]``.

    Each ``nn.Linear`` becomes one ``baddbmm`` over the task axis; other layers (activations)
    are applied as they are. Equal to vmapping ``functional_call`` over the task axis.
    """
    for name, layer in seq.named_children():
        if isinstance(layer, nn.Linear):
            w = params[f"{prefix}.{name}.weight"].transpose(1, 2)
            b = params.get(f"{prefix}.{name}.bias")
            x = torch.bmm(x, w) if b is None else torch.baddbmm(b.unsqueeze(1), x, w)
        else:
            x = layer(x)
    return x


def _mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    activation: Activation,
    weight_init: WeightInit = "torch",
) -> nn.Sequential:
    if weight_init not in ("torch", "xavier"):
        raise ValueError(f"weight_init={weight_init!r} must be 'torch' or 'xavier'")
    act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), act()]
        in_dim = h
    layers.append(nn.Linear(in_dim, out_dim))
    if weight_init == "xavier":
        for layer in layers:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


class MLPPolicy(nn.Module, ABC):
    """Base of the feed-forward policies: ``forward(obs)`` returns the distribution's inputs."""

    def params(self) -> Params:
        """The module's parameters as a plain dict (the meta-parameters of MAML)."""
        return dict(self.named_parameters())

    @abstractmethod
    def make_distribution(self, out: torch.Tensor) -> Distribution:
        """The action distribution from the output of ``forward``."""

    def distribution(
        self, obs: torch.Tensor, params: Params | None = None, task_batched: bool = False
    ) -> Distribution:
        """Action distribution at ``obs`` under ``params`` (the module's own by default).

        With ``task_batched=True`` every tensor of ``params`` has a leading task axis and
        ``obs`` is ``[task, ...]``: one vmapped forward evaluates all tasks' weights together.
        """
        if params is None:
            return self.make_distribution(self(obs))
        if not task_batched:
            return self.make_distribution(functional_call(self, params, (obs,)))
        return self.make_distribution(self.batched_forward(obs, params))

    def batched_forward(self, obs: torch.Tensor, params: Params) -> torch.Tensor:
        """``forward`` for every task's weights at once (``params`` and ``obs`` lead with task).

        The generic path vmaps ``functional_call``; subclasses made of plain MLPs override it
        with batched matrix products, which do the same arithmetic with far less per-call
        overhead (the MAML inner loop calls this on every rollout step and inner step).
        """
        return vmap(lambda p, o: functional_call(self, p, (o,)))(params, obs)  # type: ignore[no-any-return]


class GaussianMLPPolicy(MLPPolicy):
    """Diagonal Gaussian with a state-independent, learned log standard deviation.

    ``forward`` returns ``[..., 2 * act_dim]``: the mean and the log std broadcast to it.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (64, 64),
        activation: Activation = "tanh",
        init_std: float = 1.0,
        min_log_std: float = -5.0,
        action_scale: Sequence[float] | None = None,
        weight_init: WeightInit = "torch",
    ):
        super().__init__()
        self.act_dim = act_dim
        self.mean = _mlp(obs_dim, hidden, act_dim, activation, weight_init)
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)))
        self.min_log_std = min_log_std
        # Optional affine map from the network's [-1, 1]-scaled action space to the env's box, as
        # rllab's ``normalize(env)`` that the MAML experiments ran under (Finn et al. 2017 code):
        # mean and std are multiplied by the half-width, so step sizes keep their published scale.
        # A plain attribute rather than a buffer: it is not a parameter and not checkpoint state.
        self.action_scale: torch.Tensor | None = (
            None if action_scale is None else torch.as_tensor(action_scale, dtype=torch.float32)
        )

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self._head(self.mean(obs), self.log_std)

    def batched_forward(self, obs: torch.Tensor, params: Params) -> torch.Tensor:
        if obs.dim() != 3:
            return super().batched_forward(obs, params)
        mean = _batched_mlp(self.mean, "mean", params, obs)  # [task, N, act_dim]
        return self._head(mean, params["log_std"].unsqueeze(1))

    def _head(self, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
        log_std = log_std.clamp(min=self.min_log_std).expand_as(mean)
        if self.action_scale is not None:
            scale = self.action_scale.to(mean)
            mean = mean * scale
            log_std = log_std + scale.log()
        return torch.cat([mean, log_std], dim=-1)

    def make_distribution(self, out: torch.Tensor) -> Distribution:
        mean, log_std = out.split(self.act_dim, dim=-1)
        return Independent(Normal(mean, log_std.exp()), 1)


class CategoricalMLPPolicy(MLPPolicy):
    """Categorical distribution over ``num_actions`` actions; ``forward`` returns logits."""

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        hidden: Sequence[int] = (64, 64),
        activation: Activation = "tanh",
        weight_init: WeightInit = "torch",
    ):
        super().__init__()
        self.logits = _mlp(obs_dim, hidden, num_actions, activation, weight_init)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.logits(obs)

    def batched_forward(self, obs: torch.Tensor, params: Params) -> torch.Tensor:
        if obs.dim() != 3:
            return super().batched_forward(obs, params)
        return _batched_mlp(self.logits, "logits", params, obs)

    def make_distribution(self, out: torch.Tensor) -> Distribution:
        return Categorical(logits=out)


def make_mlp_policy(
    observation_space: gym.Space,
    action_space: gym.Space,
    hidden: Sequence[int] = (64, 64),
    activation: Activation = "tanh",
    init_std: float = 1.0,
    scale_to_action_space: bool = False,
    weight_init: WeightInit = "torch",
) -> MLPPolicy:
    """The feed-forward policy that fits the spaces (Gaussian for Box, categorical for Discrete).

    ``scale_to_action_space`` (Box with finite, symmetric bounds): the Gaussian acts in [-1, 1]
    units scaled to the box's half-width, like rllab's ``normalize(env)`` (see GaussianMLPPolicy).
    """
    obs_dim = space_dim(observation_space)
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalMLPPolicy(obs_dim, int(action_space.n), hidden, activation, weight_init)
    if isinstance(action_space, gym.spaces.Box):
        scale = None
        if scale_to_action_space:
            low, high = action_space.low.ravel(), action_space.high.ravel()
            if not (
                math.isfinite(float(abs(low).max()))
                and math.isfinite(float(abs(high).max()))
                and (low == -high).all()
            ):
                raise ValueError(
                    f"scale_to_action_space needs finite symmetric bounds; the action "
                    f"space is {action_space}"
                )
            scale = [float(h) for h in high]
        return GaussianMLPPolicy(
            obs_dim,
            space_dim(action_space),
            hidden,
            activation,
            init_std,
            action_scale=scale,
            weight_init=weight_init,
        )
    raise ValueError(f"action space {action_space} is not supported: use Discrete or Box")


class MLPValue(nn.Module):
    """State-value network ``V(obs) -> [...]``."""

    def __init__(
        self, obs_dim: int, hidden: Sequence[int] = (64, 64), activation: Activation = "tanh"
    ):
        super().__init__()
        self.net = _mlp(obs_dim, hidden, 1, activation)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)


class RecurrentActorCritic(nn.Module):
    """GRU actor-critic for RL² (Duan et al. 2016, arXiv:1611.02779).

    The input at step t is ``[obs_t, onehot(a_{t-1}) or a_{t-1}, r_{t-1}, d_{t-1}]`` where
    ``d_{t-1}`` says the previous step ended an episode: inside a trial the agent sees episode
    boundaries but keeps its memory. Actor and critic share the GRU; each has a linear head.

    With ``transition_key`` the input also carries ``k = obs_{t-1} (x) a_{t-1}`` (the flattened
    outer product of the previous observation and the previous action's encoding) and
    ``r_{t-1} k``. For one-hot states and actions ``k`` is the one-hot of the pair the reward
    belongs to: the key a tabular learner files it under, which the GRU otherwise has to form
    from its own memory of the previous state (see experiments/rl2_mdp_memory_probe.py).

    With ``obs_head > 0`` a ReLU layer of that many units, fed with the GRU's output and the
    current observation, sits between the GRU and the two heads, so reading out what the memory
    holds about the current state need not happen inside the GRU.

    With ``reward_head`` (discrete actions) a linear head on the same features predicts, for every
    action, the reward of taking it now (:meth:`predict_rewards`). RL² can train it on the rewards
    the agent received (``RL2Config.reward_aux_coef``): a self-supervised signal that asks the
    memory for exactly what a tabular learner keeps, the reward of each action in this state.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        hidden_size: int = 256,
        init_std: float = 1.0,
        transition_key: bool = False,
        obs_head: int = 0,
        reward_head: bool = False,
    ):
        super().__init__()
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        if reward_head and not self.discrete:
            raise ValueError(
                f"reward_head=True predicts one reward per action and needs a Discrete action "
                f"space; the action space is {action_space}"
            )
        self.obs_dim = space_dim(observation_space)
        self.act_dim = space_dim(action_space)
        self.hidden_size = hidden_size
        self.transition_key = transition_key
        key_dim = self.obs_dim * self.act_dim if transition_key else 0
        self.input_dim = self.obs_dim + self.act_dim + 2 + 2 * key_dim
        self.gru = nn.GRU(self.input_dim, hidden_size)
        self.obs_head = (
            nn.Sequential(nn.Linear(hidden_size + self.obs_dim, obs_head), nn.ReLU())
            if obs_head
            else None
        )
        features = obs_head or hidden_size
        self.pi = nn.Linear(features, self.act_dim)
        self.v = nn.Linear(features, 1)
        self.reward_head = nn.Linear(features, self.act_dim) if reward_head else None
        # Small policy-head init keeps the first trials close to uniform (as in CleanRL's PPO).
        nn.init.orthogonal_(self.pi.weight, 0.01)
        nn.init.zeros_(self.pi.bias)
        self.log_std = (
            None if self.discrete else nn.Parameter(torch.full((self.act_dim,), math.log(init_std)))
        )

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.zeros(batch, self.hidden_size, device=device)

    def build_input(
        self,
        obs: torch.Tensor,
        prev_action: torch.Tensor,
        prev_reward: torch.Tensor,
        prev_done: torch.Tensor,
        prev_obs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[..., input_dim]`` from ``obs [..., obs_dim]``, ``prev_action [...]`` (discrete) or
        ``[..., act_dim]``, ``prev_reward [...]``, ``prev_done [...]``, and with
        ``transition_key`` the observation the previous action was taken at, ``prev_obs``
        (zeros at the first step of a trial)."""
        if self.discrete:
            a = nn.functional.one_hot(prev_action.long(), self.act_dim).to(obs.dtype)
        else:
            a = prev_action.to(obs.dtype)
        r = prev_reward.unsqueeze(-1).to(obs.dtype)
        parts = [
            obs.reshape(*prev_reward.shape, self.obs_dim),
            a,
            r,
            prev_done.unsqueeze(-1).to(obs.dtype),
        ]
        if self.transition_key:
            if prev_obs is None:
                raise ValueError("transition_key=True needs prev_obs, the previous observation")
            o = prev_obs.reshape(*prev_reward.shape, self.obs_dim).to(obs.dtype)
            key = (o.unsqueeze(-1) * a.unsqueeze(-2)).flatten(-2)
            parts += [key, r * key]
        return torch.cat(parts, dim=-1)

    def features(self, gru_out: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """What the heads read: the GRU output, through the observation head if there is one."""
        if self.obs_head is None:
            return gru_out
        # The observation is the first obs_dim inputs.
        return self.obs_head(torch.cat([gru_out, inputs[..., : self.obs_dim]], -1))

    def heads(self, features: torch.Tensor) -> tuple[Distribution, torch.Tensor]:
        """(action distribution, value) from :meth:`features`."""
        out = self.pi(features)
        if self.discrete:
            dist: Distribution = Categorical(logits=out)
        else:
            assert self.log_std is not None
            dist = Independent(Normal(out, self.log_std.exp().expand_as(out)), 1)
        return dist, self.v(features).squeeze(-1)

    def predict_rewards(self, features: torch.Tensor) -> torch.Tensor:
        """``[..., num_actions]``: the predicted reward of each action (needs ``reward_head``)."""
        if self.reward_head is None:
            raise ValueError("predict_rewards needs a network built with reward_head=True")
        return self.reward_head(features)

    def step(
        self, inputs: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[Distribution, torch.Tensor, torch.Tensor]:
        """One step for a batch: ``inputs [B, in]``, ``hidden [B, H]`` -> (dist, value [B], hidden)."""
        out, h = self.gru(inputs.unsqueeze(0), hidden.unsqueeze(0))
        dist, value = self.heads(self.features(out[0], inputs))
        return dist, value, h[0]

    def sequence(
        self, inputs: torch.Tensor, hidden: torch.Tensor | None = None
    ) -> tuple[Distribution, torch.Tensor, torch.Tensor]:
        """Whole trials at once: ``inputs [T, B, in]`` from a fresh (or given) state ->
        (dist, value ``[T, B]``, features ``[T, B, F]``).

        Equals calling :meth:`step` T times; used by PPO to recompute log-probs over sequences.
        """
        h0 = None if hidden is None else hidden.unsqueeze(0)
        out, _ = self.gru(inputs, h0)
        features = self.features(out, inputs)
        dist, value = self.heads(features)
        return dist, value, features

    @staticmethod
    def reset_at(hidden: torch.Tensor, trial_start: torch.Tensor) -> torch.Tensor:
        """Zero the hidden state of rows where a new trial starts (and only there)."""
        return hidden * (~trial_start).unsqueeze(-1).to(hidden.dtype)
