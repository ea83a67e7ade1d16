"""RL²: hidden state across episodes and trials, whole-trial PPO minibatches, and learning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from metarl.algorithms import get_algorithm
from metarl.algorithms.ppo import PPOBatch, PPOConfig, ppo_update
from metarl.algorithms.rl2 import RL2, ReturnNormalizer, RL2Config, trial_dones
from metarl.config import RunConfig, from_dict, load_config
from metarl.evaluation import Evaluator
from metarl.sampling import rollout

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def small_rl2(env_id: str = "metarl/Bandit-v0", **overrides: object) -> RL2:
    cfg = RL2Config(
        **{"tasks_per_iteration": 6, "episodes_per_trial": 4, "hidden_size": 16, **overrides}
    )  # type: ignore[arg-type]
    kwargs = {"num_arms": 3} if "Bandit" in env_id else {}
    return RL2(env_id, cfg, seed=3, env_kwargs=kwargs)


def recording_actor(algo: RL2) -> tuple[object, list[tuple[torch.Tensor | None, torch.Tensor]]]:
    """The RL² actor, recording (hidden state received, prev_done) at every step."""
    act, _ = algo.make_actor(algo.action_generator)
    seen: list[tuple[torch.Tensor | None, torch.Tensor]] = []

    def wrapped(obs, prev_action, prev_reward, prev_done, hidden):  # type: ignore[no-untyped-def]
        seen.append((None if hidden is None else hidden.clone(), prev_done.clone()))
        out = act(obs, prev_action, prev_reward, prev_done, hidden)
        seen[-1] = (*seen[-1], out[3].clone())  # type: ignore[assignment]
        return out

    return wrapped, seen


def replayed_trials(algo: RL2) -> tuple[dict[str, Any], torch.Tensor]:
    """One rollout of 6 trials, PPO's sequences of it, and the log-probs of the acted actions
    when the network re-runs those sequences from a zero state (``[seq, time]``)."""
    algo.env.set_tasks(algo.sample_tasks(6))
    act, h0 = algo.make_actor(algo.action_generator)
    traj = rollout(algo.env, act, algo.config.episodes_per_trial)
    seqs = algo._sequences(traj, h0)
    with torch.no_grad():
        dist, _, _ = algo.net.sequence(seqs["inputs"].transpose(0, 1))
        logp = dist.log_prob(seqs["actions"].transpose(0, 1)).T
    return seqs, logp


def test_registered_under_rl2() -> None:
    assert get_algorithm("rl2") is RL2


def test_hidden_state_carries_across_episodes_of_a_trial() -> None:
    algo = small_rl2()
    algo.env.set_tasks(algo.sample_tasks(6))
    act, seen = recording_actor(algo)
    rollout(algo.env, act, num_episodes=4)  # a bandit episode is one pull: 4 steps, 3 boundaries
    assert len(seen) == 4
    assert seen[0][0] is None  # a trial starts from the fresh state
    for t in range(1, 4):
        hidden_in, prev_done, _ = seen[t]  # type: ignore[misc]
        assert bool(prev_done.all()), "each pull ends an episode"
        # ...yet the state handed to step t is exactly the state step t-1 produced, not zero.
        torch.testing.assert_close(hidden_in, seen[t - 1][2])  # type: ignore[misc]
        assert hidden_in.abs().sum() > 0


def test_hidden_state_resets_at_trial_boundaries() -> None:
    algo = small_rl2()
    algo.env.set_tasks(algo.sample_tasks(6))
    for _ in range(2):  # two consecutive trials
        act, seen = recording_actor(algo)
        rollout(algo.env, act, num_episodes=4)
        assert seen[0][0] is None
    # The actor builds a zero state when given none.
    act, _ = algo.make_actor(algo.action_generator)
    obs = algo.env.reset()
    zeros = torch.zeros(6, dtype=torch.long)
    x = algo.net.build_input(obs, zeros, zeros.float(), zeros.bool())
    _, _, h_fresh = algo.net.step(x, algo.net.initial_state(6))
    *_, h = act(obs, zeros, zeros.float(), zeros.bool(), None)
    torch.testing.assert_close(h, h_fresh)


@pytest.mark.parametrize(
    "env_id", ["metarl/Bandit-v0", "metarl/TabularMDP-v0", "metarl/PointNav-v0"]
)
def test_sequence_replay_matches_the_rollout(env_id: str) -> None:
    """PPO re-runs each trial from a zero state and must see what the actor saw: same log-probs
    (discrete and continuous actions), and different ones if the state were reset per episode."""
    algo = small_rl2(env_id, episodes_per_trial=3)
    seqs, logp = replayed_trials(algo)
    torch.testing.assert_close(logp, seqs["batch"].log_probs, atol=1e-5, rtol=1e-5)
    if env_id == "metarl/Bandit-v0":  # per-episode reset: each pull from zero state
        with torch.no_grad():
            x = seqs["inputs"].transpose(0, 1)  # [time, seq, in]
            dist1, _, _ = algo.net.sequence(x.reshape(1, -1, x.shape[-1]))
            logp_reset = dist1.log_prob(seqs["actions"].transpose(0, 1).reshape(1, -1))
        assert not torch.allclose(logp_reset.reshape(logp.T.shape).T, logp, atol=1e-4)


def test_continuous_previous_action_enters_clipped_and_scaled() -> None:
    # Point navigation clips actions to [-0.1, 0.1]: a sample of 0.3 was executed as 0.1 and
    # enters the GRU as +1; -0.05 as -0.5.
    algo = small_rl2("metarl/PointNav-v0")
    obs = torch.zeros(2, 2)
    x = algo.policy_input(
        obs,
        torch.tensor([[0.3, -0.05], [0.0, -1.0]]),
        torch.zeros(2),
        torch.zeros(2, dtype=torch.bool),
    )
    torch.testing.assert_close(x[:, 2:4], torch.tensor([[1.0, -0.5], [0.0, -1.0]]))


def test_truncated_bptt_chunks_start_from_the_behaviour_state() -> None:
    algo = small_rl2("metarl/TabularMDP-v0", episodes_per_trial=2, bptt_length=7)
    algo.env.set_tasks(algo.sample_tasks(6))
    act, h0 = algo.make_actor(algo.action_generator, record_every=7)
    traj = rollout(algo.env, act, 2)  # 20 steps -> chunks of 7, 7, 6 (+1 padding)
    seqs = algo._sequences(traj, h0)
    assert seqs["inputs"].shape[:2] == (6 * 3, 7)
    assert seqs["h0"].shape == (18, 16)
    with torch.no_grad():
        dist, _, _ = algo.net.sequence(seqs["inputs"].transpose(0, 1), seqs["h0"])
        logp = dist.log_prob(seqs["actions"].transpose(0, 1)).T
    m = seqs["batch"].mask
    assert int(m.sum()) == 6 * 20  # the padding is masked out
    torch.testing.assert_close(logp[m], seqs["batch"].log_probs[m], atol=1e-5, rtol=1e-5)


def test_ppo_minibatches_keep_each_sequence_whole() -> None:
    # 8 sequences of 5 steps; every evaluate call must get whole sequences, each exactly once per
    # epoch, and ppo_update must read all 5 steps of each.
    n, t = 8, 5
    param = torch.nn.Parameter(torch.zeros(()))
    calls: list[torch.Tensor] = []

    def evaluate(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        calls.append(idx.clone())
        out = param.expand(len(idx), t)
        return out, out, out

    batch = PPOBatch(
        *(torch.zeros(n, t) for _ in range(4)), mask=torch.ones(n, t, dtype=torch.bool)
    )
    cfg = PPOConfig(epochs=3, num_minibatches=4)
    ppo_update(
        evaluate,
        batch,
        [param],
        torch.optim.SGD([param], lr=0.0),
        cfg,
        torch.Generator().manual_seed(0),
    )
    assert len(calls) == 3 * 4
    for epoch in range(3):
        seen = torch.cat(calls[4 * epoch : 4 * epoch + 4])
        assert sorted(seen.tolist()) == list(range(n))  # a partition of the sequences


def test_ppo_adds_an_auxiliary_loss_and_refuses_two() -> None:
    """A fourth value from evaluate joins the minibatch loss (here it is the only term with a
    gradient, so the parameter moves iff it is added) and is reported; a fifth is refused."""
    n, t = 4, 3
    param = torch.nn.Parameter(torch.zeros(()))
    zeros = torch.zeros(n, t)

    def evaluate(idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = zeros[: len(idx)]
        return out, out, out, (param - 1.0) ** 2

    batch = PPOBatch(
        *(torch.zeros(n, t) for _ in range(4)), mask=torch.ones(n, t, dtype=torch.bool)
    )
    cfg = PPOConfig(epochs=1, num_minibatches=1, max_grad_norm=10.0)
    metrics = ppo_update(evaluate, batch, [param], torch.optim.SGD([param], lr=0.25), cfg)
    assert metrics["loss/aux"] == 1.0  # before the step
    assert float(param.detach()) == 0.5  # 0 - 0.25 * d/dp (p - 1)^2 at 0

    def five(idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (*evaluate(idx), param * 0)

    with pytest.raises(ValueError, match="evaluate returned 5 values"):
        ppo_update(five, batch, [param], torch.optim.SGD([param], lr=0.0), cfg)


def test_train_step_feeds_ppo_whole_trials() -> None:
    algo = small_rl2(episodes_per_trial=5)
    shapes: list[tuple[int, ...]] = []
    original = algo.net.sequence

    def spy(inputs: torch.Tensor, hidden: torch.Tensor | None = None):  # type: ignore[no-untyped-def]
        shapes.append(tuple(inputs.shape[:2]))
        assert hidden is None  # whole trials start from the fresh state
        return original(inputs, hidden)

    algo.net.sequence = spy  # type: ignore[method-assign]
    metrics = algo.train_step()
    assert shapes and all(s[0] == 5 for s in shapes)  # time axis = the whole 5-pull trial
    assert sum(s[1] for s in shapes) == 6 * algo.config.ppo.epochs
    assert metrics["env_steps"] == 6 * 5
    for key in (
        "meta_train/return_episode_1",
        "meta_train/return_episode_5",
        "meta_train/trial_return",
        "loss/policy",
        "loss/value",
        "loss/entropy",
        "optim/approx_kl",
        "optim/clip_fraction",
    ):
        assert key in metrics


def test_trial_dones_mark_only_the_end_of_the_trial() -> None:
    algo = small_rl2("metarl/TabularMDP-v0", episodes_per_trial=2)
    algo.env.set_tasks(algo.sample_tasks(6))
    act, _ = algo.make_actor(algo.action_generator)
    traj = rollout(algo.env, act, 2)
    d = trial_dones(traj)
    assert int(traj.dones.sum()) == 6 * 2  # two 10-step episodes each
    assert d[..., 19].all() and int(d.sum()) == 6  # only step 19 ends the trial


def test_return_normalizer_matches_pooled_variance() -> None:
    # Batches [1, 3] and [5, 7, 9]: pooled mean 5, population variance
    # ((1-5)^2 + (3-5)^2 + 0 + 2^2 + 4^2) / 5 = 40 / 5 = 8.
    norm = ReturnNormalizer()
    norm.update(torch.tensor([1.0, 3.0]))
    norm.update(torch.tensor([5.0, 7.0, 9.0]))
    assert float(norm.mean) == pytest.approx(5.0)
    assert float(norm.var) == pytest.approx(8.0)


def test_adaptation_curve_gives_one_point_per_episode() -> None:
    algo = small_rl2("metarl/PointNav-v0", episodes_per_trial=2)
    curve = Evaluator("metarl/PointNav-v0", num_tasks=5).curve(algo, "test")
    assert curve.axis == "episode" and curve.returns.shape == (5, 2)


def test_experiment_presets_build_and_run_one_step() -> None:
    presets = sorted(EXPERIMENTS.glob("rl2_*.toml"))
    assert presets, "experiments/rl2_*.toml presets are missing"
    for path in presets:
        cfg = from_dict(RunConfig, load_config(path))
        algo_cfg = from_dict(RL2Config, cfg.algo, "algo")
        algo_cfg.tasks_per_iteration = 2
        algo = RL2(cfg.env, algo_cfg, seed=1, env_kwargs=cfg.env_kwargs)
        assert algo.train_step()["env_steps"] > 0, path.name


@pytest.mark.slow
def test_rl2_learns_bandits_clearly_better_than_random() -> None:
    """5-armed bandits, 10 pulls: random scores 5.0; after ~0.6M steps RL² must reach 5.6+."""
    torch.set_num_threads(1)
    cfg = RL2Config(
        tasks_per_iteration=1000,
        episodes_per_trial=10,
        hidden_size=64,
        ppo=PPOConfig(
            learning_rate=1e-2,
            epochs=4,
            num_minibatches=4,
            ent_coef=0.01,
            gamma=0.99,
            gae_lambda=0.3,
        ),
    )
    algo = RL2("metarl/Bandit-v0", cfg, seed=1, env_kwargs={"num_arms": 5})
    for _ in range(60):
        algo.train_step()
    result = Evaluator("metarl/Bandit-v0", num_tasks=1000, env_kwargs={"num_arms": 5}).evaluate(
        algo
    )["test"]
    random_score = 5.0
    assert result.trial_return_mean - result.trial_return_ci95 > random_score + 0.4, (
        result.trial_return_mean
    )


def test_runs_on_the_gymnasium_backend() -> None:
    cfg = RL2Config(tasks_per_iteration=3, episodes_per_trial=2, hidden_size=16)
    algo = RL2("metarl/TabularMDP-v0", cfg, seed=1, backend="gymnasium")
    assert algo.train_step()["env_steps"] == 3 * 2 * 10


def test_transition_key_is_the_one_hot_of_the_previous_state_and_action() -> None:
    algo = small_rl2("metarl/TabularMDP-v0", transition_key=True)
    n_s, n_a = algo.net.obs_dim, algo.net.act_dim
    prev_obs = nn.functional.one_hot(torch.tensor([3, 0]), n_s).float()
    obs = nn.functional.one_hot(torch.tensor([1, 2]), n_s).float()
    x = algo.policy_input(
        obs,
        torch.tensor([4, 1]),
        torch.tensor([0.5, -2.0]),
        torch.zeros(2, dtype=torch.bool),
        prev_obs,
    )
    base = n_s + n_a + 2
    assert x.shape == (2, base + 2 * n_s * n_a) == (2, algo.net.input_dim)
    key, reward_key = x[:, base : base + n_s * n_a], x[:, base + n_s * n_a :]
    expected = torch.zeros(2, n_s * n_a)
    expected[0, 3 * n_a + 4] = 1.0
    expected[1, 0 * n_a + 1] = 1.0
    torch.testing.assert_close(key, expected)
    torch.testing.assert_close(reward_key, expected * torch.tensor([[0.5], [-2.0]]))
    with pytest.raises(ValueError, match="prev_obs"):
        algo.net.build_input(obs, torch.tensor([4, 1]), torch.zeros(2), torch.zeros(2))


@pytest.mark.parametrize("env_id", ["metarl/TabularMDP-v0", "metarl/PointNav-v0"])
@pytest.mark.parametrize("obs_head", [0, 8])
def test_transition_key_replay_matches_the_rollout(env_id: str, obs_head: int) -> None:
    """The actor carries the previous observation in its state; PPO rebuilds the key from the
    trajectory, across episode boundaries, and must see what the actor saw (with and without
    the observation head, which the step and sequence paths both feed)."""
    algo = small_rl2(env_id, episodes_per_trial=3, transition_key=True, obs_head=obs_head)
    seqs, logp = replayed_trials(algo)
    m = seqs["batch"].mask
    torch.testing.assert_close(logp[m], seqs["batch"].log_probs[m], atol=1e-5, rtol=1e-5)
    # the key is live: zero only at each trial's first step
    key = seqs["inputs"][..., -2 * algo.net.obs_dim * algo.net.act_dim :]
    assert key[:, 0].abs().sum() == 0
    assert (key[:, 1:][m[:, 1:]].abs().sum(-1) > 0).float().mean() > 0.5


def test_bad_architecture_options_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="obs_head=-4"):
        small_rl2(obs_head=-4)
    with pytest.raises(ValueError, match="bptt_length=0"):
        small_rl2(bptt_length=0)
    with pytest.raises(ValueError, match="reward_aux_coef=-0.5"):
        small_rl2(reward_aux_coef=-0.5)
    with pytest.raises(ValueError, match="reward_head=True .* Discrete"):
        small_rl2("metarl/PointNav-v0", reward_aux_coef=1.0)


def test_obs_head_reads_the_current_observation() -> None:
    algo = small_rl2("metarl/TabularMDP-v0", obs_head=8)
    net = algo.net
    assert net.obs_head is not None and net.pi.in_features == 8
    features = torch.randn(2, net.hidden_size)
    inputs = torch.zeros(2, net.input_dim)
    inputs[:, 0] = 1.0
    other = inputs.clone()
    other[:, 0], other[:, 1] = 0.0, 1.0  # same GRU output, another current state
    with torch.no_grad():
        _, v1 = net.heads(net.features(features, inputs))
        _, v2 = net.heads(net.features(features, other))
        non_obs = inputs + torch.eye(net.input_dim)[-1]  # a non-observation input
        _, v3 = net.heads(net.features(features, non_obs))
    assert not torch.allclose(v1, v2)
    torch.testing.assert_close(v1, v3)


def test_reward_prediction_loss_scores_the_action_taken() -> None:
    """With a constant prediction per action, the loss is the squared error of the taken
    action's constant against the reward received, averaged over the unmasked steps only."""
    algo = small_rl2("metarl/TabularMDP-v0", reward_aux_coef=1.0)
    head = algo.net.reward_head
    assert head is not None
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.arange(head.out_features, dtype=torch.float32))
    features = torch.randn(4, 3, head.in_features)  # [time, seq, F]
    actions = torch.randint(0, head.out_features, (4, 3))
    rewards = torch.randn(4, 3)
    mask = torch.ones(4, 3, dtype=torch.bool)
    mask[3, 0] = False
    loss = algo.reward_prediction_loss(features, actions, rewards, mask)
    expected = ((actions.float() - rewards) ** 2)[mask].mean()
    torch.testing.assert_close(loss, expected)


def test_reward_aux_loss_trains_the_head_and_reaches_the_memory() -> None:
    """Only the auxiliary loss reaches the reward head, so its weights move iff the loss is in
    PPO's objective; its gradient must also reach the GRU (the memory it is there to shape).
    Off (the default), the network has no reward head: the paper's agent is unchanged."""
    assert small_rl2("metarl/TabularMDP-v0").net.reward_head is None
    algo = small_rl2("metarl/TabularMDP-v0", reward_aux_coef=1.0)
    head = algo.net.reward_head
    assert head is not None
    before = head.weight.detach().clone()
    metrics = algo.train_step()
    assert metrics["loss/aux"] > 0
    assert not torch.allclose(head.weight, before)

    seqs, _ = replayed_trials(algo)
    x = seqs["inputs"].transpose(0, 1)
    _, _, features = algo.net.sequence(x)
    loss = algo.reward_prediction_loss(
        features, seqs["actions"].T, seqs["rewards"].T, seqs["batch"].mask.T
    )
    grads = torch.autograd.grad(
        loss, [algo.net.gru.weight_hh_l0, algo.net.pi.weight], allow_unused=True
    )
    assert grads[0] is not None and grads[0].abs().sum() > 0  # the memory is trained by it
    assert grads[1] is None  # the policy head is not


def test_results_script_keeps_each_finished_run_after_its_directory_is_gone(
    tmp_path, monkeypatch
) -> None:
    """experiments/rl2_results.py summarizes a run directory into its committed runs file and
    rebuilds the row from that file once the directory (never committed) is gone."""
    import importlib.util
    import shutil
    import sys

    from metarl.training import train

    monkeypatch.syspath_prepend(str(EXPERIMENTS))  # the script imports experiments/baselines.py
    spec = importlib.util.spec_from_file_location(
        "experiments_rl2_results", EXPERIMENTS / "rl2_results.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, script)
    spec.loader.exec_module(script)
    monkeypatch.setattr(script, "RUNS_FILE", tmp_path / "rl2_runs.json")
    cfg = from_dict(
        RunConfig,
        {
            "algorithm": "rl2",
            "env": "metarl/Bandit-v0",
            "name": "rl2_bandit_n10_k5",
            "seed": 2,
            "total_env_steps": 160,
            "runs_dir": str(tmp_path / "runs"),
            "env_kwargs": {"num_arms": 5},
            "eval": {"num_tasks": 8, "splits": ["test"]},
            "algo": {"tasks_per_iteration": 8, "episodes_per_trial": 10, "hidden_size": 8},
        },
    )
    run = train(cfg, progress=False)
    first = script.finished_runs(tmp_path / "runs", "rl2_bandit_n10_k5")
    assert len(first) == 1 and first[0]["run"] == run.name and first[0]["steps"] == 160
    score = first[0]["test"]["trial_return_mean"]
    assert 0.0 <= score <= 10.0 and first[0]["torch_threads"] == cfg.torch_threads
    shutil.rmtree(run)
    assert script.finished_runs(tmp_path / "runs", "rl2_bandit_n10_k5") == first
    assert script.finished_runs(tmp_path / "runs", "rl2_bandit_n10_k10") == []
