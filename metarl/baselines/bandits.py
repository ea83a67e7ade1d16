"""Classic Bernoulli-bandit algorithms, batched over tasks: the RL² paper's Table 1 baselines.

Duan et al. 2016 (RL², arXiv:1611.02779, section 3.1) score RL² against random, Gittins index,
UCB1, Thompson sampling (TS), optimistic TS, eps-greedy and greedy on k-armed Bernoulli bandits with
``p_i ~ U[0, 1]``. Following the paper:

* UCB1, eps-greedy and greedy start their statistics from one success and one failure per arm
  (a Beta(1, 1) pseudo-count), and their hyperparameters (``c``, ``epsilon``) are tuned;
* TS and the Gittins index are Bayesian and get the true prior, Beta(1, 1).

:class:`BayesOptimalBandit` is not in the paper: the exact Bayes-optimal agent of the n-pull
trial under the true prior, whose expected score (:func:`bayes_optimal_value`) bounds every agent's.

Every agent keeps per-arm success/failure counts ``[env, arm]`` and decides for all environments
with one tensor operation per pull; randomness comes only from the generator it is given. Each
implements :class:`metarl.evaluation.Adaptive`: a trial of ``num_episodes`` one-pull episodes per
task, scored as ``returns[task, episode]``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import lru_cache
from typing import Literal

import torch

from metarl.env import BatchedEnv
from metarl.evaluation import AdaptationCurve
from metarl.tasks import TaskBatch, check_choice

__all__ = [
    "BanditAgent",
    "RandomBandit",
    "GreedyBandit",
    "EpsilonGreedyBandit",
    "UCB1",
    "ThompsonSampling",
    "GittinsIndex",
    "gittins_indices",
    "BayesOptimalBandit",
    "bayes_optimal_value",
    "MAX_BAYES_STATES",
    "best_action",
    "random_argmax",
    "sample_beta",
    "sample_gamma",
]


# --- randomness helpers: every draw from an explicit generator ----------------------------------
def env_seed(generator: torch.Generator) -> int:
    """A seed for an env's own generator (reward noise), drawn from the agent's generator."""
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))


def _rand(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def random_argmax(values: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``argmax`` over the last axis with ties broken uniformly at random.

    Ties are the rule, not the exception, for count-based agents (all arms start at the same
    pseudo-count), and ``torch.argmax`` would always pick the lowest index.
    """
    u = _rand(tuple(values.shape), generator, values.device)
    is_max = values == values.max(dim=-1, keepdim=True).values
    return torch.where(is_max, u, -1.0).argmax(dim=-1)


TieBreak = Literal["random", "first"]
TIE_BREAKS: tuple[str, ...] = ("random", "first")


def best_action(
    values: torch.Tensor, generator: torch.Generator, tie_break: TieBreak = "random"
) -> torch.Tensor:
    """The best entry of the last axis; ties at random, or at the lowest index (``"first"``).

    ``"first"`` is ``numpy.argmax``'s convention, which the RL² paper's greedy baselines appear
    to have used (see experiments/results/baselines.md): it keeps a count-based agent on its
    current arm whenever that arm's estimate ties the untried ones.
    """
    if tie_break == "first":
        return values.argmax(dim=-1)
    return random_argmax(values, generator)


def sample_gamma(concentration: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Gamma(concentration, 1) draws from ``generator``.

    ``torch.distributions.Gamma`` takes no generator; its sampler, ``torch._standard_gamma``, does
    (a private but long-stable op: the distributions module is built on it).
    """
    draws = torch._standard_gamma(
        concentration.to(generator.device, torch.float64), generator=generator
    )
    return draws.to(concentration.device, concentration.dtype)


def sample_beta(a: torch.Tensor, b: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Beta(a, b) draws as ``X / (X + Y)`` with ``X ~ Gamma(a)``, ``Y ~ Gamma(b)``."""
    x = sample_gamma(torch.stack([a, b]), generator)  # [2, ...]
    return x[0] / (x[0] + x[1])


# --- the trial loop shared by every bandit agent ------------------------------------------------
class BanditAgent(ABC):
    """A bandit algorithm run for a trial of ``num_episodes`` pulls on every task at once.

    Subclasses implement :meth:`act`, mapping the counts ``successes, failures [env, arm]``
    (observed pulls only; priors are the subclass's business) to an arm per env.
    """

    name = "bandit-agent"

    def __init__(self, num_episodes: int):
        if not isinstance(num_episodes, int) or num_episodes < 1:
            raise ValueError(f"num_episodes={num_episodes!r} must be a positive int (pulls/trial)")
        self.num_episodes = num_episodes

    @abstractmethod
    def act(
        self, successes: torch.Tensor, failures: torch.Tensor, t: int, generator: torch.Generator
    ) -> torch.Tensor:
        """The arm ``[env]`` (long) to pull at pull ``t`` (0-based) of the trial."""

    def adaptation_curve(
        self, env: BatchedEnv, tasks: TaskBatch, generator: torch.Generator
    ) -> AdaptationCurve:
        """Pull ``num_episodes`` times in every env; ``returns[task, pull]`` is the reward."""
        if env.max_episode_steps != 1:
            raise ValueError(
                f"{type(self).__name__} plays one-pull bandit episodes; the env has "
                f"max_episode_steps={env.max_episode_steps}"
            )
        env.set_tasks(tasks)
        env.reset(seed=env_seed(generator))
        k = int(env.single_action_space.n)  # type: ignore[attr-defined]
        n, device = env.num_envs, env.device
        successes = torch.zeros(n, k, device=device)  # [env, arm]
        failures = torch.zeros(n, k, device=device)  # [env, arm]
        rewards = torch.zeros(n, self.num_episodes, device=device)  # [env, pull]
        for t in range(self.num_episodes):
            arm = self.act(successes, failures, t, generator)  # [env]
            _, reward, _, _, _ = env.step(arm)
            pulled = torch.nn.functional.one_hot(arm, k).to(successes.dtype)  # [env, arm]
            r = reward.to(successes.dtype)[:, None]
            successes += pulled * r
            failures += pulled * (1 - r)
            rewards[:, t] = r[:, 0]
        per_task = rewards.view(env.num_tasks, env.envs_per_task, -1).mean(1)  # [task, pull]
        return AdaptationCurve(per_task.cpu(), "episode", env_steps=n * self.num_episodes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_episodes={self.num_episodes})"


class RandomBandit(BanditAgent):
    """Pulls an arm uniformly at random: the floor, ``n / 2`` in expectation on U[0, 1] arms."""

    name = "random"

    def act(
        self, successes: torch.Tensor, failures: torch.Tensor, t: int, generator: torch.Generator
    ) -> torch.Tensor:
        return random_argmax(torch.zeros_like(successes), generator)


def _pseudo_count_mean(successes: torch.Tensor, failures: torch.Tensor) -> torch.Tensor:
    # One success and one failure per arm before any pull (RL² section 3.1): the Beta(1, 1)
    # posterior mean, so an untried arm is worth 1/2 rather than 0 or undefined.
    return (successes + 1) / (successes + failures + 2)


class EpsilonGreedyBandit(BanditAgent):
    """With probability ``epsilon`` a uniformly random arm, else the best pseudo-count mean.

    ``tie_break`` says how equal means are split: at random (the default), or at the lowest
    index (``"first"``, ``numpy.argmax``), which changes the behaviour and not only the
    bookkeeping: an arm back at mean 1/2 after one success and one failure ties the untried arms,
    and ``"first"`` keeps pulling it while ``"random"`` almost always moves on.
    """

    name = "eps-greedy"

    def __init__(self, num_episodes: int, epsilon: float = 0.1, tie_break: TieBreak = "random"):
        super().__init__(num_episodes)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon={epsilon!r} must be in [0, 1]")
        check_choice("tie_break", tie_break, TIE_BREAKS)
        self.epsilon = float(epsilon)
        self.tie_break = tie_break

    def act(
        self, successes: torch.Tensor, failures: torch.Tensor, t: int, generator: torch.Generator
    ) -> torch.Tensor:
        mean = _pseudo_count_mean(successes, failures)  # [env, arm]
        greedy = best_action(mean, generator, self.tie_break)  # [env]
        if self.epsilon == 0.0:
            return greedy
        uniform = random_argmax(torch.zeros_like(successes), generator)  # [env]
        explore = _rand((successes.shape[0],), generator, successes.device) < self.epsilon
        return torch.where(explore, uniform, greedy)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_episodes={self.num_episodes}, "
            f"epsilon={self.epsilon}, tie_break={self.tie_break!r})"
        )


class GreedyBandit(EpsilonGreedyBandit):
    """Eps-greedy with ``epsilon = 0`` (the paper's Greedy): always the best pseudo-count mean."""

    name = "greedy"

    def __init__(self, num_episodes: int, tie_break: TieBreak = "random"):
        super().__init__(num_episodes, epsilon=0.0, tie_break=tie_break)


class UCB1(BanditAgent):
    """UCB1 (Auer et al. 2002) with a tunable exploration weight ``c`` (Audibert et al. 2009).

    ``index_i = mean_i + c * sqrt(2 log t / T_i)``, with the statistics started at one success and
    one failure per arm as in the RL² paper: ``T_i`` is arm i's pull count plus 2 and ``t`` the sum
    of the ``T_i``, i.e. the pseudo-observations count as if they had been pulls. (With ``c >= 1``
    this makes the first ``k`` pulls try every arm once, as classic UCB1 does.)
    """

    name = "UCB1"

    def __init__(self, num_episodes: int, c: float = 1.0):
        super().__init__(num_episodes)
        if c < 0:
            raise ValueError(f"c={c!r} must be >= 0 (UCB1 exploration weight)")
        self.c = float(c)

    def act(
        self, successes: torch.Tensor, failures: torch.Tensor, t: int, generator: torch.Generator
    ) -> torch.Tensor:
        pulls = successes + failures + 2  # [env, arm]
        total = pulls.sum(dim=-1, keepdim=True)  # [env, 1]
        index = (successes + 1) / pulls + self.c * torch.sqrt(2 * torch.log(total) / pulls)
        return random_argmax(index, generator)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_episodes={self.num_episodes}, c={self.c})"


class ThompsonSampling(BanditAgent):
    """Thompson sampling (Thompson 1933) with the true prior Beta(1, 1).

    Each pull draws one mean per arm from its Beta posterior and pulls the best draw.
    """

    name = "TS"

    def act(
        self, successes: torch.Tensor, failures: torch.Tensor, t: int, generator: torch.Generator
    ) -> torch.Tensor:
        theta = sample_beta(successes + 1, failures + 1, generator)  # [env, arm]
        return theta.argmax(dim=-1)  # continuous draws: ties have probability 0


# --- Gittins index ------------------------------------------------------------------------------
@lru_cache(maxsize=16)
def _gittins_table(discount: float, max_pulls: int, grid: int, extra_depth: int) -> torch.Tensor:
    """Gittins indices of every Beta(1 + s, 1 + f) with ``s + f <= max_pulls`` (see below)."""
    gamma = discount
    # Grid denser near 0 and 1, where indices of long-observed arms crowd together.
    u = torch.linspace(0.0, 1.0, grid, dtype=torch.float64)
    lam = ((1 - torch.cos(torch.pi * u)) / 2)[:, None]  # [lambda, 1]
    retire = lam / (1 - gamma)  # value of taking the known arm lambda forever
    depth = max_pulls + extra_depth
    # Beyond `depth` observations the posterior is treated as known (mean = posterior mean): then
    # the best one can do is the better of the two arms forever.
    s = torch.arange(depth + 1, dtype=torch.float64)
    value = torch.maximum(lam, ((s + 1) / (depth + 2))[None]) / (1 - gamma)  # [lambda, s]
    table = torch.full((max_pulls + 1, max_pulls + 1), float("nan"), dtype=torch.float64)
    for d in range(depth - 1, -1, -1):  # d = s + f observations so far
        s = torch.arange(d + 1, dtype=torch.float64)
        mean = (s + 1) / (d + 2)  # [s] posterior mean of Beta(1 + s, 1 + d - s)
        # Pull once: expected reward now, then the posterior moves to s + 1 (success) or s.
        pull = mean + gamma * (mean * value[:, 1:] + (1 - mean) * value[:, :-1])  # [lambda, s]
        if d <= max_pulls:
            # The index is the lambda at which pulling and retiring are equally good. The
            # advantage of pulling falls strictly with lambda (slope <= -1), so it crosses zero
            # once: find the grid cell and interpolate linearly inside it.
            adv = pull - retire  # [lambda, s]
            above = (adv > 0).sum(0).clamp(1, grid - 1)  # [s] first grid point with adv <= 0
            a_lo = adv.gather(0, (above - 1)[None])[0]
            a_hi = adv.gather(0, above[None])[0]
            l_lo, l_hi = lam[above - 1, 0], lam[above, 0]
            frac = (a_lo / (a_lo - a_hi)).clamp(0, 1)
            idx = l_lo + frac * (l_hi - l_lo)
            table[s.long(), d - s.long()] = idx
        value = torch.maximum(pull, retire)
    return table


def gittins_indices(
    discount: float, max_pulls: int, grid: int = 1001, extra_depth: int | None = None
) -> torch.Tensor:
    """Gittins indices ``[max_pulls + 1, max_pulls + 1]`` of a Bernoulli arm with a Beta(1,1) prior.

    Entry ``[s, f]`` (for ``s + f <= max_pulls``; NaN elsewhere) is the index of an arm observed to
    pay ``s`` times and fail ``f`` times, i.e. with posterior Beta(1 + s, 1 + f), under discount
    ``discount``. It is computed by calibration (Gittins 1979; Gittins, Glazebrook and Weber 2011,
    ch. 8): the index is the reward ``lambda`` per step of a known "retirement" arm at which an
    optimal player is indifferent between retiring now and pulling the unknown arm once more (then
    continuing optimally). For every ``lambda`` of a grid over [0, 1] one backward induction over all
    posterior states gives that indifference test for every state at once, because the value of the
    one-armed problem does not depend on where it started; the crossing is then interpolated
    linearly between grid points. The state space is truncated ``extra_depth`` observations past
    ``max_pulls`` (default ``3 / (1 - discount)``, at least 50 and at most 1500), where the
    posterior mean is taken as the true mean. Against a 8001-point grid and twice the depth, the
    default settings agree to 2e-4 (largest error over all states, discount 0.99) and reproduce
    the published indices of Beta(1, 1): 0.7029 at discount 0.9 and 0.8699 at 0.99.

    Cached per arguments: a table for 500 pulls takes a few seconds, once per process.
    """
    if not 0.0 < discount < 1.0:
        raise ValueError(f"discount={discount!r} must be in (0, 1)")
    if extra_depth is None:
        extra_depth = int(min(1500, max(50, 3 / (1 - discount))))
    return _gittins_table(float(discount), int(max_pulls), int(grid), int(extra_depth))


class GittinsIndex(BanditAgent):
    """Pull the arm of largest Gittins index (Gittins 1979), with the true prior Beta(1, 1).

    The index is Bayes-optimal for the *discounted infinite-horizon* Bernoulli bandit; the RL²
    paper uses it on its finite-horizon trials all the same. ``discount`` sets how far ahead the
    index looks: ``discount = 1 - 1 / num_episodes`` (the default) gives an effective horizon of the
    trial length; the baseline script tunes it per setting, as the paper tunes the other baselines.
    """

    name = "Gittins"

    def __init__(self, num_episodes: int, discount: float | None = None, grid: int = 1001):
        super().__init__(num_episodes)
        self.discount = float(discount) if discount is not None else 1 - 1 / max(num_episodes, 2)
        self.grid = grid
        self._table = gittins_indices(self.discount, num_episodes, grid).float()

    def act(
        self, successes: torch.Tensor, failures: torch.Tensor, t: int, generator: torch.Generator
    ) -> torch.Tensor:
        table = self._table.to(successes.device)
        index = table[successes.long(), failures.long()]  # [env, arm]
        return random_argmax(index, generator)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_episodes={self.num_episodes}, discount={self.discount})"


# --- exact finite-horizon Bayes-optimal agent ---------------------------------------------------
#: The most posterior states the exact dynamic programme may visit (each about 0.2 kB and 10 µs).
MAX_BAYES_STATES = 1_000_000

_Arm = tuple[int, int]  # (successes, failures) of one arm
_State = tuple[_Arm, ...]  # the pulled arms' counts, sorted; untried arms are left out


def _count_states(max_arms: int, num_pulls: int) -> float:
    """How many posterior states the DP stores: multisets of at most ``max_arms`` pulled arms'
    ``(s, f)`` with at most ``num_pulls - 1`` pulls in all (a decision is still to be made).
    Exact up to ``MAX_BAYES_STATES``; above it, possibly only a lower bound.

    Counted with the generating function ``prod_w (1 - y x^w)^-(w + 1)`` (``w + 1`` kinds of arm
    pulled ``w`` times, ``y`` counting arms), in float64: exact below 2^53, which is all a
    comparison with ``MAX_BAYES_STATES`` needs.
    """
    top = num_pulls - 1  # the most pulls behind a state that still has a decision
    single = num_pulls * (num_pulls + 1) / 2  # the states with at most one pulled arm
    if max_arms == 1 or single > MAX_BAYES_STATES:
        return single  # exact, or a lower bound that already says "too large"
    count = 0.0
    # At most two arms first: a cheap lower bound that stops huge num_pulls before the full table.
    for parts in (2, max_arms) if max_arms > 2 else (2,):
        c = torch.zeros(parts + 1, top + 1, dtype=torch.float64)  # [arms, pulls]
        c[0, 0] = 1.0
        for w in range(1, top + 1):
            new = c.clone()
            coef = 1.0
            for j in range(1, min(parts, top // w) + 1):
                coef *= (w + j) / j  # C(w + j, j): multisets of j arms among w + 1 kinds
                new[j:, w * j :] += coef * c[:-j, : top + 1 - w * j]
            c = new
        count = float(c.sum())
        if count > MAX_BAYES_STATES:
            break
    return count


def _check_dp_size(num_arms: int, num_pulls: int, field: str) -> None:
    max_arms = min(num_arms, num_pulls)
    states = _count_states(max_arms, num_pulls)
    if states <= MAX_BAYES_STATES:
        return
    largest = 1
    while _count_states(min(num_arms, largest + 1), largest + 1) <= MAX_BAYES_STATES:
        largest += 1
    raise ValueError(
        f"{field}={num_pulls} (pulls per trial) with num_arms={num_arms} is too large for the "
        f"exact Bayes-optimal DP: it has at least {states:.3g} posterior states and at most "
        f"{MAX_BAYES_STATES:,} are allowed, i.e. {field} <= {largest} for num_arms={num_arms}"
    )


def _check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}={value!r} must be an int >= {low}")
    return value


class _BayesOptimalDP:
    """Exact values of a ``num_arms``-armed Bernoulli bandit with ``num_pulls`` pulls left at the
    empty state, under independent Beta(1, 1) priors.

    Arms with equal counts are interchangeable, so a state is the sorted tuple of the pulled arms'
    ``(successes, failures)``; the untried arms are ``num_arms`` minus its length and the pulls
    left ``num_pulls`` minus its total. ``num_arms`` is capped at ``num_pulls``: whenever a pull
    remains an untried arm remains too, so more arms change nothing.
    """

    def __init__(self, num_arms: int, num_pulls: int):
        self.num_arms = min(num_arms, num_pulls)
        self.num_pulls = num_pulls
        self._value: dict[_State, float] = {}

    def q_values(self, state: _State) -> dict[_Arm, float]:
        """Expected reward still to come after pulling one arm of each kind: ``{(s, f): Q}``,
        with ``(0, 0)`` for an untried arm when there is one."""
        left = self.num_pulls - sum(s + f for s, f in state)
        if left < 1:
            raise ValueError(f"state {state} has no pull left of {self.num_pulls}")
        kinds = set(state)
        if len(state) < self.num_arms:
            kinds.add((0, 0))
        q = {}
        for s, f in kinds:
            p = (s + 1) / (s + f + 2)  # posterior mean of Beta(1 + s, 1 + f)
            if left == 1:
                q[(s, f)] = p
                continue
            rest = list(state)
            if s + f:
                rest.remove((s, f))
            win = tuple(sorted([*rest, (s + 1, f)]))
            lose = tuple(sorted([*rest, (s, f + 1)]))
            q[(s, f)] = p * (1.0 + self.value(win)) + (1.0 - p) * self.value(lose)
        return q

    def value(self, state: _State = ()) -> float:
        """Expected reward still to come when playing Bayes-optimally from ``state``."""
        v = self._value.get(state)
        if v is None:
            v = max(self.q_values(state).values())
            self._value[state] = v
        return v


@lru_cache(maxsize=4)
def _bayes_dp(num_arms: int, num_pulls: int) -> _BayesOptimalDP:
    return _BayesOptimalDP(num_arms, num_pulls)


def bayes_optimal_value(num_arms: int, num_pulls: int) -> float:
    """The Bayes-optimal expected total reward of ``num_pulls`` pulls on ``num_arms`` Bernoulli arms
    with ``p_i ~ U[0, 1]`` (Beta(1, 1)) independently: the most any agent can score in expectation
    over the prior.

    Exact (float64) backward induction over the posterior states, memoized; see
    :class:`BayesOptimalBandit`. Refuses settings with more than ``MAX_BAYES_STATES`` states.
    """
    _check_int("num_arms", num_arms, 1)
    _check_int("num_pulls", num_pulls, 1)
    _check_dp_size(num_arms, num_pulls, "num_pulls")
    return _bayes_dp(min(num_arms, num_pulls), num_pulls).value()


class BayesOptimalBandit(BanditAgent):
    """The exact Bayes-optimal agent of the finite-horizon trial (Bellman 1956), prior Beta(1, 1).

    Each pull takes an arm of largest Q-value, ``Q = p (1 + V(after a success)) + (1 - p) V(after
    a failure)`` with ``p = (s + 1) / (s + f + 2)``, from a dynamic programme over the posterior
    states up to arm permutation (:func:`bayes_optimal_value`). Its expected trial return over
    the prior is :func:`bayes_optimal_value`, the ceiling of every agent; on a given task it
    need not be the best. Ties (Q-values within 1e-12) are broken at random. The state space
    grows fast with the trial length: n = 10 takes well under a second for any k, while a
    setting with more than ``MAX_BAYES_STATES`` states is refused when the arms are known (at
    the first pull, or at construction if ``num_arms`` is given).
    """

    name = "Bayes-optimal"
    #: The arm prior this agent assumes, as ``BanditTasks.describe()["probs"]`` words it.
    PRIOR = "U[0, 1] per arm"

    def __init__(self, num_episodes: int, num_arms: int | None = None):
        super().__init__(num_episodes)
        if num_arms is not None:
            _check_int("num_arms", num_arms, 1)
            _check_dp_size(num_arms, num_episodes, "num_episodes")
        self.num_arms = num_arms

    def _dp(self, num_arms: int) -> _BayesOptimalDP:
        _check_dp_size(num_arms, self.num_episodes, "num_episodes")
        return _bayes_dp(min(num_arms, self.num_episodes), self.num_episodes)

    def adaptation_curve(
        self, env: BatchedEnv, tasks: TaskBatch, generator: torch.Generator
    ) -> AdaptationCurve:
        describe = getattr(getattr(env, "distribution", None), "describe", None)
        prior = describe().get("probs", self.PRIOR) if describe is not None else self.PRIOR
        if prior != self.PRIOR:
            raise ValueError(
                f"{type(self).__name__} assumes arm probabilities {self.PRIOR} (Beta(1, 1)); "
                f"the env draws them from {prior!r}"
            )
        self._dp(int(env.single_action_space.n))  # type: ignore[attr-defined]  # size check
        return super().adaptation_curve(env, tasks, generator)

    def act(
        self, successes: torch.Tensor, failures: torch.Tensor, t: int, generator: torch.Generator
    ) -> torch.Tensor:
        dp = self._dp(successes.shape[-1])
        seen: dict[_State, dict[_Arm, float]] = {}  # many envs share a state early in a trial
        rows = []
        for s_row, f_row in zip(successes.long().tolist(), failures.long().tolist(), strict=True):
            arms = list(zip(s_row, f_row, strict=True))
            state = tuple(sorted(a for a in arms if a != (0, 0)))
            q = seen.get(state)
            if q is None:
                q = seen[state] = dp.q_values(state)
            rows.append([q[a] for a in arms])
        values = torch.tensor(rows, dtype=torch.float64)  # [env, arm]
        # Arms of one kind have bit-equal Q; snap rounding-level differences to ties as well.
        best = values.max(dim=-1, keepdim=True).values
        values = torch.where(values >= best - 1e-12, best, values)
        return random_argmax(values, generator).to(successes.device)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_episodes={self.num_episodes})"
