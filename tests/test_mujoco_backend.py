"""The ``mujoco`` backend and the MuJoCo locomotion families.

Parity: the batched backend and the single Gymnasium env give the same observations and rewards
(1e-9, float64) over 300 steps that include an episode reset, for every family. Dynamics: a
different mass changes the trajectory, and ``set_tasks`` takes effect without rebuilding the env.
Splits: ``ood`` outside the training range, ``test`` inside, seeded and recorded. Plus
``check_env``, contract shapes, agreement with Gymnasium's own v5 envs, and an SB3 PPO smoke run.
"""

from __future__ import annotations

import json
import math

import gymnasium as gym
import mujoco
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import envs.mujoco_locomotion as locomotion
from metarl import TaskBatch, check_task_env, make_batched_env, make_distribution
from metarl.dynamics import (
    RAND_PARAMS,
    LogUniform,
    RandomDynamics,
    apply_to_model,
    base_values,
    record_splits,
    sample_splits,
)

FAMILIES = [f"metarl/{name}-v0" for name in locomotion.FAMILIES]


def _actions(env, steps: int, seed: int) -> torch.Tensor:
    """Uniform actions in the control range, ``[steps, num_envs, nu]``."""
    space = env.single_action_space
    low, high = torch.as_tensor(space.low), torch.as_tensor(space.high)
    u = torch.rand(steps, env.num_envs, len(low), generator=torch.Generator().manual_seed(seed))
    return low + (high - low) * u


def _start_from(single, benv, row: int) -> np.ndarray:
    """Reset the single env to the batched env's current state in ``row``."""
    obs, _ = single.reset(
        options={"qpos": benv.qpos[row].numpy().copy(), "qvel": benv.qvel[row].numpy().copy()}
    )
    return obs


@pytest.mark.parametrize("env_id", FAMILIES)
def test_batched_matches_single_env_over_300_steps_with_reset(env_id):
    tasks = make_distribution(env_id).sample(2, "train", torch.Generator().manual_seed(1))
    benv = make_batched_env(
        env_id, num_tasks=2, backend="mujoco", dtype=torch.float64, max_episode_steps=120
    )
    benv.set_tasks(tasks)
    obs = benv.reset(seed=3)
    row = 1
    single = gym.make(env_id).unwrapped
    single.set_task(tasks.select([row]))
    obs_err = np.abs(_start_from(single, benv, row) - obs[row].numpy()).max()
    reward_err, resets, t = 0.0, 0, 0
    for action in _actions(benv, 300, seed=5):
        obs, reward, terminated, truncated, info = benv.step(action)
        s_obs, s_reward, s_terminated, _, _ = single.step(action[row].numpy())
        t += 1
        obs_err = max(obs_err, np.abs(s_obs - info["final_obs"][row].numpy()).max())
        reward_err = max(reward_err, abs(s_reward - reward[row].item()))
        assert s_terminated == bool(terminated[row])
        assert bool(truncated[row]) == (t == 120 and not s_terminated)
        if s_terminated or t == 120:
            resets, t = resets + 1, 0
            obs_err = max(obs_err, np.abs(_start_from(single, benv, row) - obs[row].numpy()).max())
    assert resets >= 1
    assert obs_err <= 1e-9 and reward_err <= 1e-9, (obs_err, reward_err)


@pytest.mark.parametrize(
    "family,gym_id,compare",
    [
        ("HalfCheetahRandParams", "HalfCheetah-v5", slice(None)),
        ("HopperRandParams", "Hopper-v5", slice(None)),
        ("Walker2dRandParams", "Walker2d-v5", slice(None)),
        (
            "AntRandParams",
            "Ant-v5",
            slice(0, 27),
        ),  # contact forces differ: see the module docstring
    ],
)
def test_default_dynamics_follow_gymnasium_v5(family, gym_id, compare):
    pytest.importorskip("imageio")  # Gymnasium's MuJoCo envs import their renderer
    ours = gym.make(f"metarl/{family}-v0").unwrapped
    ours.set_task({k: np.zeros_like(v) for k, v in ours.task.items()})  # multipliers 1
    theirs = gym.make(gym_id).unwrapped
    _, _ = theirs.reset(seed=0)
    qpos, qvel = theirs.data.qpos.copy(), theirs.data.qvel.copy()
    ours.reset(options={"qpos": qpos, "qvel": qvel})
    rng = np.random.default_rng(0)
    for _ in range(60):
        action = rng.uniform(-1, 1, ours.action_space.shape).astype(np.float32)
        o1, r1, d1, _, _ = ours.step(action)
        o2, r2, d2, _, info = theirs.step(action.astype(np.float64))
        np.testing.assert_allclose(o1[compare], o2[compare], rtol=0, atol=1e-9)
        if family == "AntRandParams":  # compare all but the contact cost
            r1 = r1 + ours.family.contact_cost_weight * float(
                (ours.data.cfrc_ext.clip(-1, 1) ** 2).sum()
            )
            r2 = r2 - info["reward_contact"]
        assert abs(r1 - r2) <= 1e-9 and d1 == d2
        if d1:
            break


def _hopper_tasks(mass_multipliers: list[float]) -> TaskBatch:
    """Hopper tasks with default dynamics but every body's mass scaled by one multiplier."""
    dist = make_distribution("metarl/HopperRandParams-v0")
    base = dist.sample(len(mass_multipliers), "train", torch.Generator().manual_seed(0))
    params = {k: torch.zeros_like(v) for k, v in base.params.items()}
    params["log_scale/body_mass"] += torch.tensor(mass_multipliers, dtype=torch.float64).log()[
        :, None
    ]
    return TaskBatch(base.family, "train", params)


def _rollout(env, actions: torch.Tensor) -> torch.Tensor:
    env.reset(seed=0)
    trace = [env.qpos.clone()]
    for action in actions:
        env.step(action)
        trace.append(env.qpos.clone())
    return torch.stack(trace)  # [time, env, nq]


def test_different_masses_give_different_trajectories():
    env = make_batched_env(
        "metarl/HopperRandParams-v0",
        num_tasks=2,
        envs_per_task=2,
        reset_noise_scale=0.0,
        terminate_when_unhealthy=False,
    )
    env.set_tasks(_hopper_tasks([1.0, 2.0]))
    actions = _actions(env, 40, seed=0)[:, :1].expand(-1, 4, -1)  # the same actions in every row
    trace = _rollout(env, actions)
    assert torch.equal(trace[:, 0], trace[:, 1])  # same task, same actions: same trajectory
    assert torch.equal(trace[:, 2], trace[:, 3])
    assert (trace[:, 0] - trace[:, 2]).abs().max() > 1e-2  # double mass: another trajectory


def test_set_tasks_takes_effect_without_rebuilding():
    light, heavy = _hopper_tasks([1.0, 1.0]), _hopper_tasks([2.0, 2.0])
    kwargs = dict(num_tasks=2, reset_noise_scale=0.0, terminate_when_unhealthy=False)
    env = make_batched_env("metarl/HopperRandParams-v0", **kwargs)
    batch = env.batch
    actions = _actions(env, 40, seed=1)
    env.set_tasks(light)
    first = _rollout(env, actions)
    env.set_tasks(heavy)  # between trials
    second = _rollout(env, actions)
    assert env.batch is batch
    fresh = make_batched_env("metarl/HopperRandParams-v0", **kwargs)
    fresh.set_tasks(heavy)
    assert torch.equal(second, _rollout(fresh, actions))
    assert (first - second).abs().max() > 1e-2


def test_every_group_reaches_the_model():
    # gravity and actuator gear, beyond the RandParams groups; the batched env must apply them
    # exactly as the single env does.
    groups = {
        "gravity": LogUniform(1.2),
        "actuator_gear": LogUniform(1.2),
        "body_mass": LogUniform(1.5),
    }
    env = make_batched_env("metarl/HalfCheetahVel-v0", num_tasks=2, dynamics=groups)
    tasks = env.distribution.sample(2, "train", torch.Generator().manual_seed(0))
    assert {"velocity", "log_scale/gravity", "log_scale/actuator_gear"} <= set(tasks.params)
    env.set_tasks(tasks)
    single = gym.make("metarl/HalfCheetahVel-v0", dynamics=groups).unwrapped
    single.set_task(tasks.select([1]))
    np.testing.assert_array_equal(env.batch.expand("opt.gravity")[1], single.model.opt.gravity)
    np.testing.assert_array_equal(env.batch.expand("actuator_gear")[1], single.model.actuator_gear)
    expected = base_values(env.model, ["gravity"])["gravity"] * np.exp(
        tasks["log_scale/gravity"][1].numpy()
    )
    np.testing.assert_array_equal(single.model.opt.gravity, expected)


@pytest.mark.parametrize("group,spec", list(RAND_PARAMS.items()))
def test_splits_ood_outside_train_range_and_test_inside(group, spec):
    dist = make_distribution("metarl/Walker2dRandParams-v0")
    splits = sample_splits(dist, {"train": 200, "test": 200, "ood": 200}, seed=0)
    edge = spec.limit * math.log(spec.base)
    for split in ("train", "test"):
        assert splits[split][f"log_scale/{group}"].abs().max() < edge
    ood = splits["ood"][f"log_scale/{group}"].abs()
    assert ood.min() > edge and ood.max() <= spec.ood_limit * math.log(spec.base) + 1e-12
    # multipliers: 1.5^3 = 3.375 for mass, inertia, friction; 1.3^3 = 2.197 for damping
    assert math.isclose(spec.range("train")[1], {1.5: 3.375, 1.3: 2.197}[spec.base], rel_tol=1e-3)


def test_objective_splits():
    g = torch.Generator().manual_seed(0)
    vel = make_distribution("metarl/HalfCheetahVel-v0")
    assert vel.sample(500, "train", g)["velocity"].min() >= 0
    assert vel.sample(500, "test", g)["velocity"].max() <= 2
    ood = vel.sample(500, "ood", g)["velocity"]
    assert ood.min() > 2 and ood.max() <= 3
    goal = make_distribution("metarl/AntGoal-v0")
    assert goal.sample(500, "train", g)["goal"].norm(dim=1).max() <= 3
    ood_r = goal.sample(500, "ood", g)["goal"].norm(dim=1)
    assert ood_r.min() > 3 and ood_r.max() <= 4 + 1e-6
    direction = make_distribution("metarl/AntDir-v0").sample(100, "train", g)["direction"]
    torch.testing.assert_close(direction.norm(dim=1), torch.ones(100))


def test_splits_are_seeded_and_recorded(tmp_path):
    dist = make_distribution("metarl/HopperRandParams-v0")
    sizes = {"train": 4, "test": 3, "ood": 2}
    recorded = record_splits(tmp_path, dist, sizes, seed=7)
    again = sample_splits(dist, sizes, seed=7)
    other = sample_splits(dist, sizes, seed=8)
    data = json.loads((tmp_path / "tasks.json").read_text())
    assert data["seed"] == 7 and set(data["distribution"]["log_scale"]) == set(RAND_PARAMS)
    for split in sizes:
        loaded = TaskBatch.from_dict(data["splits"][split])
        for name in dist.sample(1, "train", torch.Generator().manual_seed(0)).params:
            assert torch.equal(loaded[name], recorded[split][name])
            assert torch.equal(again[split][name], recorded[split][name])
            assert not torch.equal(other[split][name], recorded[split][name])


def test_random_dynamics_works_for_any_mjcf_model():
    xml = """<mujoco><worldbody><body><joint name="hinge" type="hinge" damping="0.5"/>
             <geom size="0.1" mass="2"/></body></worldbody>
             <actuator><motor joint="hinge" gear="3"/></actuator></mujoco>"""
    model = mujoco.MjModel.from_xml_string(xml)
    dist = RandomDynamics(
        model, {**RAND_PARAMS, "gravity": LogUniform(1.1), "actuator_gear": LogUniform(1.2)}
    )
    task = dist.sample(1, "ood", torch.Generator().manual_seed(0))
    scales = {k.split("/")[1]: v[0].numpy() for k, v in task.params.items()}
    base = base_values(model, list(scales))
    apply_to_model(model, mujoco.MjData(model), base, scales)
    assert model.body_mass[1] == pytest.approx(2 * math.exp(scales["body_mass"][1]))
    assert model.actuator_gear[0, 0] == pytest.approx(3 * math.exp(scales["actuator_gear"][0, 0]))
    with pytest.raises(ValueError, match="dynamics parameter group"):
        RandomDynamics(model, {"body_mas": LogUniform(1.5)})


@pytest.mark.parametrize("env_id", FAMILIES)
def test_single_env_passes_check_env(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.observation_space.dtype == np.float64


def test_contract_shapes_and_same_step_autoreset():
    env = make_batched_env(
        "metarl/AntDir-v0",
        num_tasks=2,
        envs_per_task=3,
        max_episode_steps=4,
        terminate_when_unhealthy=False,
    )
    env.set_tasks(
        make_distribution("metarl/AntDir-v0").sample(2, "test", torch.Generator().manual_seed(0))
    )
    obs = env.reset(seed=0)
    assert obs.shape == (6, 105) and obs.dtype == torch.float32
    assert env.single_observation_space.shape == (105,)
    for t in range(1, 9):
        obs, reward, terminated, truncated, info = env.step(torch.zeros(6, 8))
        assert reward.shape == (6,) and reward.dtype == torch.float32
        assert terminated.dtype == torch.bool and truncated.shape == (6,)
        assert info["final_obs"].shape == (6, 105)
        assert bool(truncated.all()) == (t % 4 == 0)
        if t % 4 == 0:  # obs already starts the next episode; final_obs ends this one
            assert not torch.equal(obs, info["final_obs"])
        else:
            assert torch.equal(obs, info["final_obs"])
    with pytest.raises(ValueError, match="action has shape"):
        env.step(torch.zeros(6, 7))


def test_reset_noise_is_seeded():
    env = make_batched_env("metarl/HalfCheetahDir-v0", num_tasks=4)
    env.set_tasks(env.distribution.sample(4, "train", torch.Generator().manual_seed(0)))
    a, b, c = env.reset(seed=1), env.reset(seed=1), env.reset(seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # rows draw their own noise


def test_stable_baselines3_ppo_trains_unmodified():
    sb3 = pytest.importorskip("stable_baselines3")
    env = gym.make("metarl/HalfCheetahVel-v0")
    model = sb3.PPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=256)
    action, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert env.action_space.contains(action)


def test_registry_check_passes_on_both_backends():
    report = check_task_env("metarl/HalfCheetahVel-v0")
    assert report["backend/mujoco"] == [4, 17] and report["backend/gymnasium"] == [4, 17]


@pytest.mark.parametrize("env_id", ["metarl/HalfCheetahDir-v0", "metarl/AntDir-v0"])
def test_direction_families_train_on_the_default_robot_and_hold_out_its_dynamics(env_id):
    dist = make_distribution(env_id)
    assert dist.splits == ("train", "test", "ood")
    gen = torch.Generator().manual_seed(0)
    train, ood = dist.sample(64, "train", gen), dist.sample(64, "ood", gen)
    scales = [k for k in train.params if k.startswith("log_scale/")]
    assert {k.split("/")[1] for k in scales} == {
        "body_mass",
        "body_inertia",
        "dof_damping",
        "geom_friction",
    }
    for k in scales:
        assert (train[k] == 0).all(), f"{k}: training dynamics must be the default robot's"
        assert (ood[k] != 0).all()
    # mass multipliers of ood tasks span ProMP's RandParams range 1.5^[-3, 3]
    mass = ood["log_scale/body_mass"].exp()
    assert mass.min() >= 1.5**-3 - 1e-9 and mass.max() <= 1.5**3 + 1e-9
    assert mass.min() < 0.5 and mass.max() > 2.0
