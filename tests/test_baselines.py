"""Classic bandit and MDP baselines (RL² Tables 1-2): oracle values and small statistical checks."""

from __future__ import annotations

import functools
import importlib.util
import math
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import torch

import envs  # noqa: F401  (registers the families)
from envs.bandits import BanditBatched
from envs.tabular_mdp import TabularMDPBatched
from metarl.baselines import (
    BASELINES,
    PSRL,
    UCB1,
    BayesOptimalBandit,
    EpsilonGreedyBandit,
    GittinsIndex,
    GreedyBandit,
    GreedyMDP,
    RandomBandit,
    RandomMDP,
    ThompsonSampling,
    backward_induction,
    bayes_optimal_value,
    gittins_indices,
    make_baseline,
)
from metarl.baselines.bandits import random_argmax, sample_beta
from metarl.evaluation import Adaptive, Evaluator
from metarl.tasks import TaskBatch

torch.set_num_threads(1)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def bandit(probs: list[list[float]], envs_per_task: int = 1) -> tuple[BanditBatched, TaskBatch]:
    tasks = TaskBatch("bandit", "test", {"probs": torch.tensor(probs)})
    return BanditBatched(len(probs), envs_per_task, num_arms=len(probs[0])), tasks


def record_actions(env):
    """Wrap ``env.step`` to keep every action it receives."""
    actions = []
    step = env.step

    def recording_step(action):
        actions.append(action.clone())
        return step(action)

    env.step = recording_step
    return actions


def trial_score(agent: Adaptive, env_id: str, num_tasks: int, **env_kwargs) -> tuple[float, float]:
    """Mean trial return and its standard error over ``num_tasks`` test tasks."""
    curve = Evaluator(env_id, num_tasks=num_tasks, env_kwargs=env_kwargs).curve(agent, "test")
    trial = curve.trial_return.double()
    return float(trial.mean()), float(trial.std()) / math.sqrt(num_tasks)


def agrees_with_paper(
    mean: float, se: float, paper: float, paper_tasks: int = 1000, num_tasks: int = 1000
) -> bool:
    # The paper's number is itself a mean over 1000 tasks: compare within the CI of a difference
    # of two estimates, plus 0.05 for the paper's rounding.
    se_paper = se * math.sqrt(num_tasks / paper_tasks)
    return abs(mean - paper) <= 1.96 * math.hypot(se, se_paper) + 0.05


# --- helpers ------------------------------------------------------------------------------------
def test_random_argmax_breaks_ties_uniformly_and_never_picks_a_non_maximum():
    values = torch.tensor([[1.0, 3.0, 3.0, 0.0, 3.0]]).expand(30_000, 5)
    picks = random_argmax(values, gen())
    counts = torch.bincount(picks, minlength=5)
    assert counts[0] == 0 and counts[3] == 0
    assert (counts[[1, 2, 4]].float() / 30_000 - 1 / 3).abs().max() < 0.02  # se 0.003


def test_beta_draws_have_the_beta_mean_and_variance():
    a, b = torch.full((40_000,), 2.0), torch.full((40_000,), 5.0)
    x = sample_beta(a, b, gen())
    # Beta(2, 5): mean 2/7 = 0.2857, variance ab / ((a+b)^2 (a+b+1)) = 10 / (49 * 8) = 0.02551.
    assert abs(x.mean().item() - 2 / 7) < 0.004  # se 0.0008
    assert abs(x.var().item() - 10 / 392) < 0.001
    assert torch.equal(x, sample_beta(a, b, gen()))  # seeded


# --- bandit agents: oracle tests ----------------------------------------------------------------
def test_ucb1_first_k_pulls_try_every_arm_once():
    # All arms always pay: the pulled arm looks best (mean 2/3 vs 1/2), so only the exploration
    # bonus makes UCB1 move on. With T_i = pulls + 2 and t = sum_i T_i, the untried arm wins when
    # 1/6 < c sqrt(2 ln t) (1/sqrt(2) - 1/sqrt(3)), which holds for c = 1 and t >= 2k + 1 = 11.
    env, tasks = bandit([[1.0] * 5] * 64)
    actions = record_actions(env)
    UCB1(5, c=1.0).adaptation_curve(env, tasks, gen())
    first = torch.stack(actions)  # [pull, env]
    assert torch.equal(first.sort(dim=0).values, torch.arange(5)[:, None].expand(5, 64))
    assert len({tuple(first[:, i].tolist()) for i in range(64)}) > 1  # orders differ (random ties)


def test_greedy_with_first_index_ties_finds_the_paying_arm_and_stays():
    # Only arm 2 pays. Every arm starts at mean 1/2; first-index ties pull arm 0 (fails: 1/3),
    # then arm 1 (fails), then arm 2 (pays: 2/3) and stays: rewards 0, 0, 1, 1, ..., total 8 in 10.
    env, tasks = bandit([[0.0, 0.0, 1.0, 0.0, 0.0]])
    curve = GreedyBandit(10, tie_break="first").adaptation_curve(env, tasks, gen())
    assert curve.returns.tolist() == [[0.0, 0.0] + [1.0] * 8]
    assert curve.trial_return.item() == 8.0


def test_greedy_never_leaves_an_arm_that_keeps_paying():
    env, tasks = bandit([[0.0, 0.0, 1.0, 0.0, 0.0]] * 200)
    returns = GreedyBandit(10).adaptation_curve(env, tasks, gen()).returns  # [task, pull]
    first_success = returns.argmax(dim=1)
    after = torch.arange(10)[None] >= first_success[:, None]
    assert returns[after].eq(1).all()  # stays on the paying arm from its first success
    assert first_success.max() <= 4  # at most the 4 failing arms are tried first
    assert first_success.float().std() > 0  # random ties: the search order varies


def test_eps_greedy_with_epsilon_one_pulls_uniformly():
    env, tasks = bandit([[1.0, 0.0, 0.0, 0.0, 0.0]] * 500)
    curve = EpsilonGreedyBandit(40, epsilon=1.0).adaptation_curve(env, tasks, gen())
    assert abs(curve.returns.mean().item() - 0.2) < 0.01  # 20k pulls, se 0.003


def test_gittins_index_of_the_uniform_prior_matches_published_values():
    # Gittins, Glazebrook and Weber (2011), Bernoulli tables: Beta(1, 1) has index 0.7029 at
    # discount 0.9 and 0.8699 at discount 0.99.
    assert gittins_indices(0.9, 5)[0, 0].item() == pytest.approx(0.7029, abs=2e-4)
    assert gittins_indices(0.99, 5)[0, 0].item() == pytest.approx(0.8699, abs=2e-4)


def _brute_force_index(successes: int, failures: int, discount: float, depth: int) -> float:
    """Calibration by bisection on one state's own recursion: an independent implementation."""

    def value(lam: float) -> float:
        @functools.cache
        def v(s: int, f: int) -> float:
            mean = (s + 1) / (s + f + 2)
            if s + f - successes - failures >= depth:
                return max(lam, mean) / (1 - discount)
            pull = mean + discount * (mean * v(s + 1, f) + (1 - mean) * v(s, f + 1))
            return max(lam / (1 - discount), pull)

        mean = (successes + 1) / (successes + failures + 2)
        return (
            mean
            + discount
            * (mean * v(successes + 1, failures) + (1 - mean) * v(successes, failures + 1))
            - lam / (1 - discount)
        )

    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if value(mid) > 0 else (lo, mid)
    return (lo + hi) / 2


@pytest.mark.parametrize("state", [(0, 0), (2, 0), (0, 3), (4, 2)])
def test_gittins_table_matches_brute_force_calibration(state):
    table = gittins_indices(0.7, 8)
    expected = _brute_force_index(*state, discount=0.7, depth=60)
    assert table[state].item() == pytest.approx(expected, abs=2e-4)


def test_gittins_index_exceeds_the_mean_and_orders_states():
    table = gittins_indices(0.95, 20)
    s, f = torch.meshgrid(torch.arange(21), torch.arange(21), indexing="ij")
    valid = (s + f) <= 20
    mean = (s + 1) / (s + f + 2)
    assert (table[valid] > mean[valid]).all()  # information has value
    assert (table[1:20, :19][valid[1:20, :19]] > table[:19, :19][valid[1:20, :19]]).all()
    assert table[0, 0] > table[1, 1] > table[5, 5]  # same mean, less uncertainty: lower index


def test_thompson_sampling_picks_an_arm_with_its_posterior_probability_of_being_best():
    # Beta(1, 1) prior; arm 0 paid once, arm 1 failed once: X ~ Beta(2, 1) (density 2x) against
    # Y ~ Beta(1, 2) (density 2(1 - y)). P(X > Y) = int_0^1 2x (2x - x^2) dx = 4/3 - 1/2 = 5/6.
    successes = torch.tensor([[1.0, 0.0]]).expand(40_000, 2)
    failures = torch.tensor([[0.0, 1.0]]).expand(40_000, 2)
    arm = ThompsonSampling(1).act(successes, failures, 0, gen())
    assert abs((arm == 0).float().mean().item() - 5 / 6) < 0.01  # se 0.002


def test_thompson_sampling_on_a_deterministic_bandit_converges_to_the_paying_arm():
    env, tasks = bandit([[0.0, 1.0, 0.0]] * 200)
    returns = ThompsonSampling(30).adaptation_curve(env, tasks, gen()).returns
    assert returns[:, -5:].mean() > 0.95
    assert returns[:, 0].mean() < 0.6  # the first pull is a uniform guess (1/3 expected)


def test_bandit_agents_are_seeded_by_the_generator_they_are_given():
    agents = (ThompsonSampling(20), GreedyBandit(20), UCB1(20, c=0.3), GittinsIndex(20))
    for agent in (*agents, BayesOptimalBandit(6)):
        env, tasks = bandit([[0.2, 0.5, 0.7]] * 50)
        a = agent.adaptation_curve(env, tasks, gen(1)).returns
        b = agent.adaptation_curve(env, tasks, gen(1)).returns
        c = agent.adaptation_curve(env, tasks, gen(2)).returns
        assert torch.equal(a, b) and not torch.equal(a, c)


def test_curve_averages_the_envs_of_each_task():
    env, tasks = bandit([[1.0, 1.0], [0.0, 0.0]], envs_per_task=3)
    curve = RandomBandit(4).adaptation_curve(env, tasks, gen())
    assert curve.returns.tolist() == [[1.0] * 4, [0.0] * 4]
    assert curve.env_steps == 6 * 4


# --- the exact Bayes-optimal bandit agent -------------------------------------------------------
def _likelihood(counts: tuple[tuple[int, int], ...]) -> Fraction:
    """P(one ordered outcome sequence with these per-arm counts), arms i.i.d. U[0, 1]:
    prod_i int p^s (1 - p)^f dp = prod_i s! f! / (s + f + 1)!."""
    out = Fraction(1)
    for s, f in counts:
        out *= Fraction(math.factorial(s) * math.factorial(f), math.factorial(s + f + 1))
    return out


def _history_value(num_arms: int, num_pulls: int, policy=None) -> Fraction:
    """Exact value of the best policy (or of ``policy(counts) -> arm``) by backward induction over
    per-arm counts in arm order (no symmetry), with outcome probabilities taken as ratios of
    sequence likelihoods rather than from a posterior-mean formula."""

    @functools.cache
    def value(counts: tuple[tuple[int, int], ...], left: int) -> Fraction:
        if left == 0:
            return Fraction(0)
        arms = range(num_arms) if policy is None else [policy(counts)]
        best = None
        for a in arms:
            q = Fraction(0)
            for r in (0, 1):
                nxt = list(counts)
                nxt[a] = (counts[a][0] + r, counts[a][1] + 1 - r)
                nxt = tuple(nxt)
                q += _likelihood(nxt) / _likelihood(counts) * (r + value(nxt, left - 1))
            best = q if best is None else max(best, q)
        return best

    return value(((0, 0),) * num_arms, num_pulls)


def _agent_policy(agent, generator):
    def policy(counts):
        s = torch.tensor([[float(c[0]) for c in counts]])
        f = torch.tensor([[float(c[1]) for c in counts]])
        return int(agent.act(s, f, int(s.sum() + f.sum()), generator)[0])

    return policy


def test_bayes_optimal_value_matches_hand_computed_cases():
    for k in (1, 2, 5, 50):
        assert bayes_optimal_value(k, 1) == 0.5  # one pull: the prior mean
    for n in range(1, 9):
        assert bayes_optimal_value(1, n) == pytest.approx(n / 2, abs=1e-12)  # nothing to learn
    # k = 2, n = 2: pull an arm (1/2); after a success stay (mean 2/3), after a failure move to
    # the untried arm (1/2): 1/2 + 1/2 * 2/3 + 1/2 * 1/2 = 13/12.
    assert bayes_optimal_value(2, 2) == pytest.approx(13 / 12, abs=1e-12)


@pytest.mark.parametrize(("num_arms", "num_pulls"), [(2, 3), (2, 6), (3, 4), (3, 5), (4, 4)])
def test_bayes_optimal_value_matches_a_brute_force_over_ordered_histories(num_arms, num_pulls):
    exact = _history_value(num_arms, num_pulls)
    assert abs(bayes_optimal_value(num_arms, num_pulls) - float(exact)) < 1e-12


def test_bayes_optimal_value_grows_with_arms_and_pulls_within_the_prophet_bound():
    v = {(k, n): bayes_optimal_value(k, n) for k in range(1, 10) for n in range(1, 9)}
    for (k, n), value in v.items():
        if k < 9:
            assert v[(k + 1, n)] >= value - 1e-12
        if n < 8:
            # One more pull is worth at least the prior mean of whichever arm it goes to.
            assert v[(k, n + 1)] >= value + 0.5 - 1e-12
        if k >= n:
            assert value == v[(n, n)]  # never more than n arms can be tried
        # Knowing the best arm from the start: n * E[max of k uniforms] = n k / (k + 1).
        assert value <= n * k / (k + 1) + 1e-12
    assert v[(2, 8)] > v[(1, 8)] + 0.1


@pytest.mark.parametrize(("num_arms", "num_pulls"), [(2, 6), (3, 5)])
def test_bayes_optimal_agent_plays_the_optimal_policy_exactly(num_arms, num_pulls):
    # Exact policy evaluation of the agent's choices at every reachable state; every history has
    # positive probability, so one suboptimal choice anywhere would lower the value.
    agent = BayesOptimalBandit(num_pulls)
    played = _history_value(num_arms, num_pulls, _agent_policy(agent, gen()))
    assert abs(float(played) - bayes_optimal_value(num_arms, num_pulls)) < 1e-12
    # The check has teeth: greedy on the posterior mean is worse here.
    greedy = _history_value(num_arms, num_pulls, _agent_policy(GreedyBandit(num_pulls), gen()))
    assert float(greedy) < float(played) - 1e-3


def test_bayes_optimal_agent_breaks_ties_at_random_among_equal_arms():
    agent = BayesOptimalBandit(5)
    picks = agent.act(torch.zeros(4000, 4), torch.zeros(4000, 4), 0, gen())
    assert (torch.bincount(picks, minlength=4) / 4000 - 0.25).abs().max() < 0.03  # se 0.007
    # Arms 0 and 2 paid once, arms 1 and 3 failed once: only 0 and 2, about equally often.
    s = torch.tensor([[1.0, 0.0, 1.0, 0.0]]).expand(4000, 4)
    picks = agent.act(s, 1 - s, 4, gen())
    counts = torch.bincount(picks, minlength=4)
    assert counts[1] == 0 and counts[3] == 0 and abs(counts[0].item() / 4000 - 0.5) < 0.03


def test_bayes_optimal_agent_scores_its_exact_value_and_no_less_than_gittins():
    evaluator = Evaluator("metarl/Bandit-v0", num_tasks=4000, env_kwargs={"num_arms": 5})
    ours = evaluator.curve(BayesOptimalBandit(10), "test").trial_return.double()
    se = float(ours.std()) / math.sqrt(len(ours))
    assert abs(float(ours.mean()) - bayes_optimal_value(5, 10)) < 2.58 * se
    gittins = evaluator.curve(GittinsIndex(10), "test").trial_return.double()  # same tasks
    diff = ours - gittins
    assert float(diff.mean()) > -2.58 * float(diff.std()) / math.sqrt(len(diff))


def test_bayes_optimal_refuses_too_large_settings_and_other_priors():
    with pytest.raises(ValueError, match=r"num_pulls=100 .*num_arms=5.*num_pulls <= 23"):
        bayes_optimal_value(5, 100)
    with pytest.raises(ValueError, match=r"num_episodes=100 .*num_arms=10"):
        BayesOptimalBandit(100, num_arms=10)
    env, tasks = bandit([[0.5] * 5] * 4)
    with pytest.raises(ValueError, match=r"num_episodes=100 .*num_arms=5"):
        BayesOptimalBandit(100).adaptation_curve(env, tasks, gen())  # before any pull
    for bad in (0, True, 2.0):
        with pytest.raises(ValueError, match="num_arms"):
            bayes_optimal_value(bad, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_pulls"):
        bayes_optimal_value(3, 0)

    class OtherPrior:
        def describe(self):
            return {"probs": "Beta(2, 2) per arm"}

    env.distribution = OtherPrior()
    with pytest.raises(ValueError, match=r"U\[0, 1\].*Beta\(2, 2\)"):
        BayesOptimalBandit(5).adaptation_curve(env, tasks, gen())


# --- bandit agents: statistical checks against the paper (Table 1) ------------------------------
def test_random_agent_scores_five_in_ten_pulls():
    mean, se = trial_score(RandomBandit(10), "metarl/Bandit-v0", 2000, num_arms=5)
    assert abs(mean - 5.0) < 1.96 * se + 0.05  # expectation n/2 exactly


def test_thompson_sampling_matches_the_paper_at_100_pulls_10_arms():
    mean, se = trial_score(ThompsonSampling(100), "metarl/Bandit-v0", 1000, num_arms=10)
    assert agrees_with_paper(mean, se, 76.7)


# --- MDP agents ---------------------------------------------------------------------------------
def hand_mdp() -> tuple[torch.Tensor, torch.Tensor]:
    """Two states, two actions. a=0 in s=0 pays 1 and stays; a=1 in s=0 pays 0 and moves to s=1
    with probability 0.75; in s=1, a=0 pays 0 and returns to s=0, a=1 pays 2 and stays."""
    reward = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]], dtype=torch.float64)  # [1, S, A]
    transition = torch.tensor(
        [[[[1.0, 0.0], [0.25, 0.75]], [[1.0, 0.0], [0.0, 1.0]]]], dtype=torch.float64
    )  # [1, S, A, S']
    return reward, transition


def test_backward_induction_matches_hand_computed_q_values():
    # Horizon 3. Last step (h=2): Q = R, V2 = [1, 2].
    # h=1: Q(0,0) = 1 + V2(0) = 2; Q(0,1) = 0 + .25*1 + .75*2 = 1.75; Q(1,0) = 0 + 1 = 1;
    #      Q(1,1) = 2 + 2 = 4; V1 = [2, 4].
    # h=0: Q(0,0) = 1 + 2 = 3; Q(0,1) = .25*2 + .75*4 = 3.5; Q(1,0) = 0 + 2 = 2; Q(1,1) = 6.
    q = backward_induction(*hand_mdp(), horizon=3)
    expected = torch.tensor(
        [[[3.0, 3.5], [2.0, 6.0]], [[2.0, 1.75], [1.0, 4.0]], [[1.0, 0.0], [0.0, 2.0]]],
        dtype=torch.float64,
    )
    assert (q[0] - expected).abs().max() < 1e-12, q[0]


def test_psrl_with_a_certain_posterior_plans_the_true_optimal_values():
    reward, transition = hand_mdp()
    visits = torch.full((1, 2, 2), 1e8, dtype=torch.float64)
    q = PSRL(1).plan(visits, reward * visits, transition * 1e8, 3, gen())
    assert (q - backward_induction(reward, transition, 3)).abs().max() < 1e-3


def test_reward_posterior_is_the_conjugate_normal_update():
    # Prior N(0, 1), unit noise, rewards 1 and 3: precision 1 + 2 = 3, mean (0 + 4) / 3.
    agent = PSRL(1, reward_prior_mean=0.0)
    mean, std = agent.reward_posterior(torch.tensor([2.0]), torch.tensor([4.0]))
    assert mean.item() == pytest.approx(4 / 3) and std.item() == pytest.approx(1 / math.sqrt(3))
    mean, _ = PSRL(1, reward_prior_mean=1.0).reward_posterior(
        torch.tensor([0.0]), torch.tensor([0.0])
    )
    assert mean.item() == 1.0  # no data: the prior mean


def test_flat_reward_prior_gives_sample_means_and_the_prior_mean_for_unvisited_pairs():
    agent = GreedyMDP(1, reward_prior_mean=0.0, reward_prior_std=math.inf)
    mean, std = agent.reward_posterior(torch.tensor([0.0, 2.0]), torch.tensor([0.0, 5.0]))
    assert (
        mean.tolist() == [0.0, 2.5]
        and std[0].isinf()
        and std[1].item() == pytest.approx(1 / math.sqrt(2))
    )
    with pytest.raises(ValueError, match="proper reward prior"):
        PSRL(1, reward_prior_std=math.inf)


def test_empirical_greedy_plans_with_transition_frequencies():
    # One visit of (s=0, a=1) that went to state 1: the empirical model moves there for sure;
    # the Dirichlet(1) posterior mean only with probability (1 + 1) / (2 + 1) = 2/3. Rewards: only
    # (1, 1) was seen, paying 3. Horizon 2 from state 0 with action 1: 0 + P(0 -> 1) * 3.
    visits = torch.zeros(1, 2, 2, dtype=torch.float64)
    visits[0, 0, 1] = visits[0, 1, 1] = 1
    reward_sum = torch.zeros_like(visits)
    reward_sum[0, 1, 1] = 3.0
    transitions = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    transitions[0, 0, 1, 1] = transitions[0, 1, 1, 1] = 1
    kw = dict(reward_prior_mean=0.0, reward_prior_std=math.inf)
    empirical = GreedyMDP(1, transitions="empirical", **kw).plan(
        visits, reward_sum, transitions, 2, gen()
    )
    posterior = GreedyMDP(1, transitions="posterior", **kw).plan(
        visits, reward_sum, transitions, 2, gen()
    )
    assert empirical[0, 0, 0, 1].item() == pytest.approx(3.0)
    assert posterior[0, 0, 0, 1].item() == pytest.approx(2.0)


def test_greedy_mdp_exploits_a_deterministic_mdp_after_one_episode():
    # Deterministic 2-state MDP (reward_std=0): action 1 always leads to state 1, where action 1
    # pays 2; action 0 pays 0 everywhere and leads to state 0. With the true prior mean (1),
    # untried pairs look worth 1, so greedy tries them; once it has seen (1, 1) pay 2 it collects
    # 2 per step. The last episode must be optimal: 0 (move) + 9 * 2 = 18.
    reward = torch.tensor([[[0.0, 0.0], [0.0, 2.0]]])
    nxt = torch.tensor([[[0, 1], [0, 1]]])
    tasks = TaskBatch(
        "tabular_mdp",
        "test",
        {"reward_mean": reward, "transition": torch.nn.functional.one_hot(nxt, 2).float()},
    )
    env = TabularMDPBatched(1, num_states=2, num_actions=2, reward_std=0.0)
    curve = GreedyMDP(8, reward_prior_mean=1.0).adaptation_curve(env, tasks, gen())
    assert curve.returns[0, -1].item() == pytest.approx(18.0)


def test_mdp_agents_are_seeded_by_the_generator_they_are_given():
    tasks = Evaluator("metarl/TabularMDP-v0", num_tasks=20).tasks("test")
    for agent in (PSRL(3), GreedyMDP(3), RandomMDP(3)):
        runs = [
            agent.adaptation_curve(TabularMDPBatched(20), tasks, gen(s)).returns for s in (1, 1, 2)
        ]
        assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_random_mdp_agent_scores_one_per_step():
    # E[reward] = 1 under N(1, 1) mean rewards whatever the policy that ignores them.
    mean, se = trial_score(RandomMDP(10), "metarl/TabularMDP-v0", 1000)
    assert abs(mean - 100.0) < 1.96 * se + 0.05


def test_psrl_with_prior_mean_zero_matches_the_paper_at_ten_episodes():
    mean, se = trial_score(PSRL(10, reward_prior_mean=0.0), "metarl/TabularMDP-v0", 1000)
    assert agrees_with_paper(mean, se, 138.1)
    assert mean > 100.0 + 10 * se  # and it learns: far above random


def test_every_baseline_satisfies_the_adaptive_protocol():
    agents = [
        RandomBandit(1),
        GreedyBandit(1),
        EpsilonGreedyBandit(1),
        UCB1(1),
        ThompsonSampling(1),
        GittinsIndex(2),
        BayesOptimalBandit(2),
        RandomMDP(1),
        GreedyMDP(1),
        PSRL(1),
    ]
    assert all(isinstance(a, Adaptive) for a in agents)


def test_baselines_script_writes_the_comparison_table(tmp_path, monkeypatch):
    path = Path(__file__).resolve().parents[1] / "experiments" / "baselines.py"
    spec = importlib.util.spec_from_file_location("experiments_baselines", path)
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, script)  # dataclasses look their module up
    spec.loader.exec_module(script)
    out = script.main(["--quick", "--out", str(tmp_path / "baselines.md")])
    text = out.read_text()
    assert "| 10, 5 |" in text and "| 10 |" in text and "(138.1)" in text


def test_make_baseline_builds_agents_by_name_for_the_env_family():
    ucb = make_baseline(
        "ucb1", "metarl/Bandit-v0", env_kwargs={"num_arms": 10}, trial_episodes=100, c=0.2
    )
    assert isinstance(ucb, UCB1) and ucb.c == 0.2 and ucb.num_episodes == 100
    assert isinstance(make_baseline("random", "metarl/TabularMDP-v0", trial_episodes=3), RandomMDP)
    assert set(BASELINES) >= {"random", "greedy", "eps-greedy", "ucb1", "ts", "gittins", "psrl"}
    bayes = make_baseline("bayes-optimal", "metarl/Bandit-v0", trial_episodes=10)
    assert isinstance(bayes, BayesOptimalBandit) and bayes.num_episodes == 10
    with pytest.raises(ValueError, match="does not run on"):
        make_baseline("bayes-optimal", "metarl/TabularMDP-v0", trial_episodes=3)
    with pytest.raises(ValueError, match="does not run on"):
        make_baseline("psrl", "metarl/Bandit-v0", trial_episodes=3)
    with pytest.raises(ValueError, match="trial_episodes"):
        make_baseline("ts", "metarl/Bandit-v0")
    with pytest.raises(ValueError, match="accepted"):
        make_baseline("ucb1", "metarl/Bandit-v0", trial_episodes=3, epsilon=0.1)


def test_bad_options_get_clear_errors():
    with pytest.raises(ValueError, match="tie_break"):
        GreedyBandit(5, tie_break="last")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="epsilon"):
        EpsilonGreedyBandit(5, epsilon=1.5)
    with pytest.raises(ValueError, match="num_episodes"):
        PSRL(0)
    with pytest.raises(ValueError, match="discount"):
        gittins_indices(1.0, 10)
