"""The rollout engine's episode bookkeeping, on point navigation with early termination."""

import pytest
import torch
from conftest import gen

import metarl
from metarl.sampling import keep_completed, rollout


def _env(goal):
    env = metarl.make_batched_env(
        "metarl/PointNav-v0", 2, 1, dtype=torch.float64, max_episode_steps=4
    )
    env.set_tasks(metarl.TaskBatch("point_nav", "train", {"goal": torch.tensor(goal)}))
    return env


def _constant(action):
    def act(obs, *_):
        a = torch.tensor(action, dtype=obs.dtype).expand(obs.shape[0], 2)
        return a, torch.zeros(obs.shape[0]), None, None

    return act


def test_masks_episodes_and_returns_with_early_termination():
    # Task 0: goal (0.1, 0.1) reached by the first step -> episodes of 1 step each.
    # Task 1: goal far away -> 4-step episodes (time limit).
    env = _env([[0.1, 0.1], [0.5, 0.5]])
    traj = rollout(env, _constant([0.1, 0.1]), num_episodes=2)
    assert traj.rewards.shape == (2, 1, 8)  # [task, env, time], time = 2 episodes * 4 steps
    assert traj.mask[0, 0].tolist() == [True, True] + [False] * 6
    assert traj.mask[1, 0].all()
    assert traj.episode[1, 0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert traj.step[1, 0].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert traj.terminated[0, 0, :2].all() and traj.truncated[1, 0, 3]
    # task 1 positions (0.1k, 0.1k), k = 1..4: distance to (0.5, 0.5) = (0.5 - 0.1k) * sqrt(2)
    expected = -sum((0.5 - 0.1 * k) * 2**0.5 for k in range(1, 5))
    returns = traj.episode_returns()  # [task, env, episode]
    assert torch.allclose(returns[1, 0], torch.tensor([expected, expected], dtype=torch.float64))
    # (goals are float32 task parameters: 0.1 is off by ~1.5e-9 in float64)
    assert torch.allclose(returns[0, 0], torch.zeros(2, dtype=torch.float64), atol=1e-8)
    assert traj.num_steps == 2 + 8


def test_step_budget_runs_whole_episodes_back_to_back():
    # rllab's batch sampler: whole episodes until a number of steps, so short episodes outnumber
    # long ones; an episode begun inside the budget runs to its end, none begins after it
    env = _env([[0.1, 0.1], [0.5, 0.5]])
    traj = rollout(env, _constant([0.1, 0.1]), min_steps=6)
    assert traj.rewards.shape == (2, 1, 6 + 4 - 1)
    assert traj.num_episodes == 6  # task 0: six 1-step episodes begin at t = 0..5
    assert traj.mask[0, 0].tolist() == [True] * 6 + [False] * 3
    assert traj.episode[1, 0, :8].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert traj.mask[1, 0].tolist() == [True] * 8 + [False]  # the 2nd episode (t = 4) finishes
    assert traj.truncated[1, 0, 7] and traj.num_steps == 6 + 8
    assert traj.episode_mask()[:, 0].tolist() == [[True] * 6, [True] * 2 + [False] * 4]
    full = -sum((0.5 - 0.1 * k) * 2**0.5 for k in range(1, 5))
    mean = traj.mean_episode_return()
    assert torch.allclose(mean, torch.tensor([0.0, full], dtype=torch.float64), atol=1e-8)
    # a whole-episode rollout ran every episode: the mean is the plain mean
    whole = rollout(env, _constant([0.1, 0.1]), num_episodes=2)
    assert whole.episode_mask().all()
    assert torch.allclose(whole.mean_episode_return(), whole.episode_returns().mean((1, 2)))
    with pytest.raises(ValueError, match="min_steps=0"):
        rollout(env, _constant([0.1, 0.1]), min_steps=0)


def test_lockstep_budget_drops_the_episodes_still_running():
    # rllab's VectorizedSampler: a task's environments step together until their completed
    # episodes hold the budget; the episodes still running then are dropped
    env = metarl.make_batched_env(
        "metarl/PointNav-v0", 1, 2, dtype=torch.float64, max_episode_steps=4
    )
    env.set_tasks(metarl.TaskBatch("point_nav", "train", {"goal": torch.tensor([[0.1, 0.1]])}))

    def act(obs, *_):  # environment 0 reaches the goal in one step, environment 1 walks away
        a = torch.tensor([[0.1, 0.1], [-0.1, -0.1]], dtype=obs.dtype)
        return a, torch.zeros(2), None, None

    traj = rollout(env, act, min_steps=3)
    # budget 3: environment 0 has completed three 1-step episodes after t = 2, when
    # environment 1 is 3 steps into its first 4-step episode, which is dropped
    short = keep_completed(traj, 3)
    assert short.mask[0, 0].tolist() == [True] * 3 + [False] * 3
    assert not short.mask[0, 1].any()
    assert short.num_episodes == 3 and short.num_steps == 3
    assert torch.allclose(short.mean_episode_return(), torch.zeros(1, dtype=torch.float64))
    # budget 6: met at t = 3, when environment 1 completes its episode (4 + 4 steps)
    both = keep_completed(traj, 6)
    assert both.mask[0, 0].tolist() == [True] * 4 + [False] * 2
    assert both.mask[0, 1].tolist() == [True] * 4 + [False] * 2
    far = -sum(((0.1 + 0.1 * k) * 2**0.5) for k in range(1, 5))  # walking away from (0.1, 0.1)
    assert torch.allclose(  # 4 one-step episodes (return ~0) and one 4-step episode
        both.mean_episode_return(), torch.tensor([far / 5], dtype=torch.float64), atol=1e-7
    )
    with pytest.raises(ValueError, match="completed 10 steps .* short of task_steps=11"):
        keep_completed(traj, 11)  # six 1-step episodes and one 4-step one fit in 6 steps
    with pytest.raises(ValueError, match="task_steps=0"):
        keep_completed(traj, 0)


def test_shifted_gives_previous_step_inputs():
    env = _env([[0.5, 0.5], [0.5, 0.5]])
    traj = rollout(env, _constant([0.1, 0.0]), num_episodes=1)
    prev_r = traj.shifted(traj.rewards)
    assert prev_r[:, :, 0].eq(0).all() and torch.equal(prev_r[:, :, 1:], traj.rewards[:, :, :-1])


def test_rollout_is_seeded():
    env = metarl.make_batched_env("metarl/PointNav-v0", 2, 2)
    env.set_tasks(metarl.make_distribution("metarl/PointNav-v0").sample(2, "train", gen(0)))

    def noisy(seed):
        g = gen(seed)

        def act(obs, *_):
            return torch.randn(obs.shape, generator=g), torch.zeros(obs.shape[0]), None, None

        return act

    a, b = rollout(env, noisy(1)), rollout(env, noisy(1))
    assert torch.equal(a.rewards, b.rewards)
