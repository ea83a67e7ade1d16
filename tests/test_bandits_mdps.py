"""Bandit and tabular-MDP families (RL² Tables 1-2): task sampling, env dynamics, parity."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the families)
from envs.bandits import BanditBatched, BanditTasks
from envs.tabular_mdp import TabularMDPBatched, TabularMDPTasks
from metarl.evaluation import Evaluator
from metarl.registry import make_batched_env, make_distribution
from metarl.tasks import TaskBatch

torch.set_num_threads(1)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- task distributions -------------------------------------------------------------------------
def test_bandit_tasks_have_one_uniform_probability_per_arm():
    tasks = BanditTasks(num_arms=7).sample(3000, "train", gen())
    probs = tasks["probs"]
    assert probs.shape == (3000, 7)
    assert probs.min() >= 0 and probs.max() < 1
    # U[0, 1]: mean 1/2, variance 1/12, over 21000 draws (se of the mean 0.002).
    assert abs(probs.mean().item() - 0.5) < 0.01
    assert abs(probs.var().item() - 1 / 12) < 0.003


@pytest.mark.parametrize("dist", [BanditTasks(num_arms=4), TabularMDPTasks()])
def test_same_generator_seed_gives_same_tasks(dist):
    a = dist.sample(5, "test", gen(3))
    b = dist.sample(5, "test", gen(3))
    c = dist.sample(5, "test", gen(4))
    for name in a:
        assert torch.equal(a[name], b[name])
        assert not torch.equal(a[name], c[name])


@pytest.mark.parametrize("dist", [BanditTasks(), TabularMDPTasks()])
def test_families_declare_train_and_test_splits_only(dist):
    assert dist.splits == ("train", "test")
    with pytest.raises(ValueError, match="split"):
        dist.sample(2, "ood", gen())


def test_mdp_tasks_have_gaussian_rewards_and_flat_dirichlet_transitions():
    tasks = TabularMDPTasks().sample(500, "train", gen(1))
    mean, p = tasks["reward_mean"], tasks["transition"]
    assert mean.shape == (500, 10, 5) and p.shape == (500, 10, 5, 10)
    # N(1, 1) over 25k draws (se of the mean 0.006).
    assert abs(mean.mean().item() - 1.0) < 0.03 and abs(mean.std().item() - 1.0) < 0.03
    # Every row is a distribution.
    assert p.min() >= 0
    assert (p.sum(-1) - 1).abs().max() < 1e-6
    # Flat Dirichlet over S=10: each coordinate ~ Beta(1, 9), mean 1/10 and variance
    # (1 * 9) / (10^2 * 11) = 0.008182; normalized uniforms, say, would give 0.0033.
    assert abs(p.mean().item() - 0.1) < 1e-4
    assert abs(p.var().item() - 9 / 1100) < 3e-4


# --- num_arms flows through the registry --------------------------------------------------------
def test_num_arms_reaches_distribution_batched_env_and_single_env():
    single = gym.make("metarl/Bandit-v0", num_arms=10)
    assert single.action_space == gym.spaces.Discrete(10)
    assert single.unwrapped.task["probs"].shape == (10,)
    batched = make_batched_env("metarl/Bandit-v0", num_tasks=3, num_arms=10)
    assert batched.single_action_space == gym.spaces.Discrete(10)
    assert make_distribution("metarl/Bandit-v0", num_arms=10).sample(2, generator=gen())[
        "probs"
    ].shape == (2, 10)
    assert (
        Evaluator("metarl/Bandit-v0", env_kwargs={"num_arms": 10}).tasks("test")["probs"].shape[1]
        == 10
    )
    assert gym.make("metarl/Bandit-v0").action_space == gym.spaces.Discrete(5)  # the default


def test_bandit_env_rejects_tasks_with_another_number_of_arms():
    env = BanditBatched(num_tasks=2, num_arms=5)
    with pytest.raises(ValueError, match="num_arms=5"):
        env.set_tasks(BanditTasks(num_arms=3).sample(2, generator=gen()))


# --- gymnasium API ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "env_id,kwargs",
    [
        ("metarl/Bandit-v0", {}),
        ("metarl/Bandit-v0", {"num_arms": 10}),
        ("metarl/TabularMDP-v0", {}),
    ],
)
def test_single_env_passes_gymnasium_env_checker(env_id, kwargs):
    env = gym.make(env_id, **kwargs)
    check_env(env.unwrapped, skip_render_check=True)


# --- batched dynamics ---------------------------------------------------------------------------
def test_every_bandit_pull_is_a_terminated_one_step_episode():
    env = BanditBatched(num_tasks=2, envs_per_task=3)
    env.set_tasks(BanditTasks().sample(2, generator=gen()))
    obs = env.reset(seed=0)
    assert obs.shape == (6, 1) and not obs.any()
    obs, reward, terminated, truncated, info = env.step(torch.zeros(6, dtype=torch.long))
    assert terminated.all() and not truncated.any()
    assert set(reward.tolist()) <= {0.0, 1.0}


def test_batched_bandit_rewards_are_bernoulli_of_the_pulled_arm():
    probs = torch.tensor([[0.3, 0.9]])
    env = BanditBatched(num_tasks=1, envs_per_task=20_000, num_arms=2)
    env.set_tasks(TaskBatch("bandit", "test", {"probs": probs}))
    env.reset(seed=1)
    arm = torch.arange(20_000) % 2  # half the envs pull each arm
    _, reward, _, _, info = env.step(arm)
    assert torch.equal(info["expected_reward"], probs[0][arm])
    # 10k pulls per arm: se <= 0.005.
    assert abs(reward[arm == 0].mean().item() - 0.3) < 0.02
    assert abs(reward[arm == 1].mean().item() - 0.9) < 0.02
    # The env's generator, reseeded, replays the same rewards.
    env.reset(seed=1)
    assert torch.equal(env.step(arm)[1], reward)


def test_batched_mdp_draws_next_states_and_rewards_from_the_task():
    p = torch.full((1, 3, 2, 3), 1 / 3)
    p[0, 0, 1] = torch.tensor([0.2, 0.0, 0.8])
    mean = torch.zeros(1, 3, 2)
    mean[0, 0, 1] = 2.5
    env = TabularMDPBatched(num_tasks=1, envs_per_task=20_000, num_states=3, num_actions=2)
    env.set_tasks(TaskBatch("tabular_mdp", "test", {"reward_mean": mean, "transition": p}))
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(torch.ones(20_000, dtype=torch.long))
    nxt = obs.argmax(-1)
    assert (nxt == 1).sum() == 0  # probability 0
    assert abs((nxt == 2).float().mean().item() - 0.8) < 0.015  # se 0.003
    assert abs(reward.mean().item() - 2.5) < 0.03 and abs(reward.std().item() - 1.0) < 0.03
    assert not terminated.any() and not truncated.any()


def test_mdp_episode_is_truncated_after_ten_steps_and_restarts_in_state_zero():
    env = TabularMDPBatched(num_tasks=2)
    env.set_tasks(TabularMDPTasks().sample(2, generator=gen()))
    obs = env.reset(seed=0)
    assert torch.equal(obs.argmax(-1), torch.zeros(2, dtype=torch.long))
    for t in range(10):
        obs, _, terminated, truncated, info = env.step(torch.full((2,), 3))
        assert not terminated.any()
        assert truncated.all() == (t == 9)
    assert torch.equal(
        obs, torch.nn.functional.one_hot(torch.zeros(2, dtype=torch.long), 10).float()
    )
    assert info["final_obs"].sum(-1).eq(1).all()  # a true one-hot state, not the reset one


# --- parity between the single Gymnasium env and the batched env --------------------------------
def test_bandit_single_and_batched_envs_agree_on_degenerate_tasks():
    # Probabilities in {0, 1} make Bernoulli rewards deterministic, so both envs must agree
    # exactly although they draw from different generators.
    probs = torch.tensor([[0.0, 1.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0, 1.0]])
    tasks = TaskBatch("bandit", "test", {"probs": probs})
    actions = torch.randint(0, 5, (30, 2), generator=gen(5))
    batched = BanditBatched(num_tasks=2)
    batched.set_tasks(tasks)
    batched.reset(seed=0)
    singles = [gym.make("metarl/Bandit-v0") for _ in range(2)]
    for i, single in enumerate(singles):
        single.unwrapped.set_task(tasks.select([i]))
        single.reset(seed=i)
    batched_rewards, single_rewards = [], []
    for a in actions:
        obs, r, term, _, info = batched.step(a)
        batched_rewards.append(r)
        row = []
        for i, single in enumerate(singles):
            s_obs, s_r, s_term, _, s_info = single.step(int(a[i]))
            single.reset()
            assert np.array_equal(s_obs, obs[i].numpy()) and s_term == bool(term[i])
            assert s_info["expected_reward"] == pytest.approx(float(info["expected_reward"][i]))
            row.append(s_r)
        single_rewards.append(row)
    assert torch.equal(torch.stack(batched_rewards), torch.tensor(single_rewards))
    assert torch.stack(batched_rewards).sum() > 0  # the check saw both outcomes


def test_mdp_single_and_batched_envs_agree_on_a_deterministic_task():
    # One-hot transitions and reward_std=0 make the MDP deterministic; 25 steps cross two
    # episode boundaries (autoreset in the batched env, TimeLimit + reset in the single env).
    g = gen(7)
    nxt = torch.randint(0, 10, (1, 10, 5), generator=g)
    task = TaskBatch(
        "tabular_mdp",
        "test",
        {
            "reward_mean": torch.randn(1, 10, 5, generator=g),
            "transition": torch.nn.functional.one_hot(nxt, 10).float(),
        },
    )
    actions = torch.randint(0, 5, (25,), generator=g)
    batched = TabularMDPBatched(num_tasks=1, reward_std=0.0)
    batched.set_tasks(task)
    b_obs = batched.reset(seed=0)
    single = gym.make("metarl/TabularMDP-v0", reward_std=0.0)
    single.unwrapped.set_task(task)
    s_obs, _ = single.reset(seed=0)
    states = []
    for a in actions:
        assert np.array_equal(s_obs, b_obs[0].numpy())
        b_obs, b_r, b_term, b_trunc, _ = batched.step(a[None])
        s_obs, s_r, s_term, s_trunc, _ = single.step(int(a))
        assert s_r == pytest.approx(float(b_r[0]), abs=1e-6)
        assert (s_term, s_trunc) == (bool(b_term[0]), bool(b_trunc[0]))
        if s_term or s_trunc:
            s_obs, _ = single.reset()
        states.append(int(s_obs.argmax()))
    assert np.array_equal(s_obs, b_obs[0].numpy())
    assert len(set(states)) > 2  # the trajectory actually moved between states
