"""Classic adaptive baselines the meta-learners are printed next to (RL², Tables 1 and 2).

Each is an :class:`~metarl.evaluation.Adaptive`: the :class:`~metarl.evaluation.Evaluator` scores
it like any meta-learner, on the same held-out tasks. ``bandits`` holds the Bernoulli-bandit
algorithms (random, greedy, eps-greedy, UCB1, Thompson sampling, Gittins index, and the exact
Bayes-optimal agent of the finite trial, which the paper does not have), ``mdps`` the
tabular-MDP ones (random, greedy, PSRL). All are batched over tasks in torch.

``make_baseline(name, env_id, trial_episodes=..., **options)`` builds one by name for a registered
family (``metarl eval --baseline NAME``); ``BASELINES`` lists the names and the families each
supports.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from metarl.baselines.bandits import (
    UCB1,
    BanditAgent,
    BayesOptimalBandit,
    EpsilonGreedyBandit,
    GittinsIndex,
    GreedyBandit,
    RandomBandit,
    ThompsonSampling,
    bayes_optimal_value,
    gittins_indices,
)
from metarl.baselines.mdps import PSRL, GreedyMDP, MDPAgent, RandomMDP, backward_induction
from metarl.tasks import check_choice

__all__ = [
    "BASELINES",
    "BanditAgent",
    "BayesOptimalBandit",
    "EpsilonGreedyBandit",
    "GittinsIndex",
    "GreedyBandit",
    "GreedyMDP",
    "MDPAgent",
    "PSRL",
    "RandomBandit",
    "RandomMDP",
    "ThompsonSampling",
    "UCB1",
    "backward_induction",
    "bayes_optimal_value",
    "gittins_indices",
    "make_baseline",
]

#: Baseline name -> {task family -> agent class}.
BASELINES: dict[str, dict[str, type]] = {
    "random": {"bandit": RandomBandit, "tabular_mdp": RandomMDP},
    "greedy": {"bandit": GreedyBandit, "tabular_mdp": GreedyMDP},
    "eps-greedy": {"bandit": EpsilonGreedyBandit},
    "ucb1": {"bandit": UCB1},
    "ts": {"bandit": ThompsonSampling},
    "gittins": {"bandit": GittinsIndex},
    "bayes-optimal": {"bandit": BayesOptimalBandit},
    "psrl": {"tabular_mdp": PSRL},
}


def make_baseline(
    name: str,
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    trial_episodes: int | None = None,
    **options: Any,
) -> Any:
    """The baseline ``name`` for the family of ``env_id``, playing trials of ``trial_episodes``.

    ``options`` go to the agent's constructor (``c`` for UCB1, ``epsilon``, ``discount``,
    ``reward_prior_mean``...); an unknown one gets an error listing those accepted.
    """
    from metarl.registry import make_distribution

    check_choice("baseline", name, sorted(BASELINES))
    family = make_distribution(env_id, **dict(env_kwargs or {})).family
    by_family = BASELINES[name]
    if family not in by_family:
        raise ValueError(
            f"baseline {name!r} does not run on {env_id} (family {family!r}); it "
            f"supports {sorted(by_family)}. Baselines for {family!r}: "
            f"{sorted(n for n, f in BASELINES.items() if family in f)}"
        )
    if trial_episodes is None:
        raise ValueError(
            "make_baseline needs trial_episodes (episodes per trial, e.g. "
            "--set trial_episodes=100 on the command line)"
        )
    cls = by_family[family]
    accepted = [p for p in inspect.signature(cls).parameters if p != "num_episodes"]
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise ValueError(f"{cls.__name__} got unknown option(s) {unknown}; accepted: {accepted}")
    return cls(int(trial_episodes), **options)
