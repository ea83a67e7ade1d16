"""Policies: functional and task-batched parameters, the RL² GRU and its trial-boundary resets."""

import gymnasium as gym
import pytest
import torch
from conftest import gen

import metarl
from metarl.policies import GaussianMLPPolicy, RecurrentActorCritic, make_mlp_policy, sample_action
from metarl.sampling import rollout


def test_task_batched_params_equal_a_loop_over_tasks():
    policy = GaussianMLPPolicy(3, 2, hidden=(8, 8))
    g = gen(0)
    params = {
        k: v.detach() + 0.1 * torch.randn(4, *v.shape, generator=g)
        for k, v in policy.params().items()
    }  # [task, ...]
    obs = torch.randn(4, 5, 3, generator=g)  # [task, batch, obs]
    actions = torch.randn(4, 5, 2, generator=g)
    batched = policy.distribution(obs, params, task_batched=True).log_prob(actions)
    looped = torch.stack(
        [
            policy.distribution(obs[i], {k: v[i] for k, v in params.items()}).log_prob(actions[i])
            for i in range(4)
        ]
    )
    assert torch.allclose(batched, looped, atol=1e-6)


def test_functional_call_does_not_touch_module_weights():
    policy = make_mlp_policy(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(4), (8,))
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    params = {k: v + 1.0 for k, v in policy.params().items()}
    policy.distribution(torch.zeros(2, 3), params).log_prob(
        torch.zeros(2, dtype=torch.long)
    ).sum().backward()
    for k, v in policy.state_dict().items():
        assert torch.equal(v, before[k])


def test_sample_action_is_reproducible_from_the_generator():
    policy = make_mlp_policy(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(4), (8,))
    dist = policy.distribution(torch.zeros(1000, 3))
    a, b = sample_action(dist, gen(1)), sample_action(dist, gen(1))
    assert torch.equal(a, b)
    # Gumbel-max draws follow the softmax: each of 4 near-uniform arms gets about 1/4
    freq = torch.bincount(a, minlength=4).float() / 1000
    assert torch.allclose(freq, dist.probs[0], atol=0.05)


def _recurrent_actor(net: RecurrentActorCritic, record: list):
    def act(obs, prev_action, prev_reward, prev_done, hidden):
        if hidden is None:
            hidden = net.initial_state(obs.shape[0])
        record.append(hidden.clone())
        x = net.build_input(obs, prev_action, prev_reward, prev_done)
        dist, value, hidden = net.step(x, hidden)
        action = sample_action(dist, g)
        return action, dist.log_prob(action), value, hidden

    g = gen(3)
    return act


def _point_nav_trial(num_episodes: int):
    env = metarl.make_batched_env("metarl/PointNav-v0", 2, 2, max_episode_steps=5)
    env.set_tasks(metarl.make_distribution("metarl/PointNav-v0").sample(2, "train", gen(0)))
    net = RecurrentActorCritic(env.single_observation_space, env.single_action_space, 16)
    hidden_seen: list[torch.Tensor] = []
    traj = rollout(env, _recurrent_actor(net, hidden_seen), num_episodes)
    return env, net, traj, hidden_seen


def test_gru_state_carries_across_episodes_within_a_trial():
    env, net, traj, hidden = _point_nav_trial(num_episodes=3)
    # episode boundaries at t = 5 and 10 (5-step episodes): the state entering them is not reset
    assert traj.dones[:, :, 4].all() and traj.dones[:, :, 9].all()
    assert hidden[0].abs().sum() == 0  # fresh trial
    assert hidden[5].abs().sum() > 0 and hidden[10].abs().sum() > 0
    # and the log-probs re-computed over the whole trial as one sequence match the rollout's,
    # which holds only if the state was carried through the episode boundaries
    inputs = net.build_input(
        traj.obs, traj.shifted(traj.actions), traj.shifted(traj.rewards), traj.shifted(traj.dones)
    )  # [task, env, time, in]
    seq = inputs.flatten(0, 1).transpose(0, 1)  # [time, task*env, in]
    dist, _, _ = net.sequence(seq)
    actions = traj.actions.flatten(0, 1).transpose(0, 1)
    recomputed = dist.log_prob(actions).transpose(0, 1).reshape(traj.log_probs.shape)
    assert torch.allclose(recomputed, traj.log_probs, atol=1e-5)


def test_gru_state_resets_at_a_new_trial_only():
    _, net, _, hidden = _point_nav_trial(num_episodes=2)
    _, _, _, hidden_next_trial = _point_nav_trial(num_episodes=2)
    assert hidden_next_trial[0].abs().sum() == 0
    h = torch.ones(3, 4)
    out = RecurrentActorCritic.reset_at(h, torch.tensor([False, True, False]))
    assert torch.equal(out, torch.tensor([[1.0] * 4, [0.0] * 4, [1.0] * 4]))


def test_xavier_weight_init_is_glorot_uniform_with_zero_biases():
    # the official MAML code's TensorFlow initializers: Glorot-uniform weights, zero biases
    torch.manual_seed(0)
    obs, act = gym.spaces.Box(-1, 1, (2,)), gym.spaces.Box(-0.1, 0.1, (2,))
    policy = make_mlp_policy(obs, act, (100, 100), "relu", weight_init="xavier")
    linears = [m for m in policy.modules() if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(100, 2), (100, 100), (2, 100)]
    for m in linears:
        fan_out, fan_in = m.weight.shape
        bound = (6 / (fan_in + fan_out)) ** 0.5
        assert m.bias.eq(0).all()
        assert m.weight.abs().max() <= bound and m.weight.abs().max() > 0.9 * bound
    default = make_mlp_policy(obs, act, (100, 100), "relu")  # PyTorch's: uniform biases
    assert all(m.bias.ne(0).any() for m in default.modules() if isinstance(m, torch.nn.Linear))
    with pytest.raises(ValueError, match="weight_init='he' must be 'torch' or 'xavier'"):
        make_mlp_policy(obs, act, (8,), "relu", weight_init="he")  # type: ignore[arg-type]
