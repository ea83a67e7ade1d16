"""The BatchedEnv contract (DESIGN.md), checked on every registered family and backend."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import gen

import metarl
from metarl.registry import task_env_spec

NUM_TASKS, PER_TASK = 2, 3
CASES = [
    (env_id, backend)
    for env_id in metarl.list_task_envs()
    for backend in task_env_spec(env_id).backends
    if backend != "warp"
]


def _actions(env, steps: int, seed: int) -> list[torch.Tensor]:
    space = env.single_action_space
    space.seed(seed)
    acts = [np.stack([space.sample() for _ in range(env.num_envs)]) for _ in range(steps)]
    return [torch.as_tensor(a) for a in acts]


def _run(env, actions, seed):
    obs = env.reset(seed=seed)
    out = [obs.clone()]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out += [obs.clone(), r.clone(), term.clone(), trunc.clone(), info["final_obs"].clone()]
    return out


@pytest.fixture(params=CASES, ids=[f"{e}-{b}" for e, b in CASES])
def env_and_tasks(request):
    env_id, backend = request.param
    env = metarl.make_batched_env(env_id, NUM_TASKS, PER_TASK, backend=backend)
    tasks = metarl.make_distribution(env_id).sample(NUM_TASKS, "train", gen(0))
    yield env, tasks
    env.close()


def test_step_returns_contract_shapes_and_dtypes(env_and_tasks):
    env, tasks = env_and_tasks
    env.set_tasks(tasks)
    n = NUM_TASKS * PER_TASK
    assert env.num_envs == n
    obs = env.reset(seed=0)
    obs_shape = env.single_observation_space.shape
    assert obs.shape == (n, *obs_shape) and obs.device == env.device
    horizon = min(env.max_episode_steps + 1, 40)
    for a in _actions(env, horizon, 0):
        obs, r, term, trunc, info = env.step(a)
        assert obs.shape == (n, *obs_shape)
        assert r.shape == (n,) and r.dtype.is_floating_point
        assert term.shape == trunc.shape == (n,) and term.dtype == trunc.dtype == torch.bool
        assert not (term & trunc).any(), "a step is terminated or truncated, not both"
        assert info["final_obs"].shape == obs.shape
        live = ~(term | trunc)
        assert torch.equal(info["final_obs"][live], obs[live]), "final_obs differs on a live row"


def test_time_limit_truncates_at_max_episode_steps(env_and_tasks):
    env, tasks = env_and_tasks
    if env.max_episode_steps > 40:
        pytest.skip("long horizon: covered by the family's own tests")
    env.set_tasks(tasks)
    env.reset(seed=0)
    done_before = torch.zeros(env.num_envs, dtype=torch.bool)
    for t, a in enumerate(_actions(env, env.max_episode_steps, 1), start=1):
        _, _, term, trunc, _ = env.step(a)
        if t < env.max_episode_steps:
            assert not trunc.any()
            done_before |= term.cpu()
    assert (trunc.cpu() | term.cpu() | done_before).all()


def test_same_seed_and_actions_reproduce_and_tasks_survive_resets(env_and_tasks):
    env, tasks = env_and_tasks
    env.set_tasks(tasks)
    acts = _actions(env, 25, 2)
    first, second = _run(env, acts, seed=5), _run(env, acts, seed=5)
    for x, y in zip(first, second, strict=True):
        assert torch.equal(x, y)


def test_rows_of_a_task_share_it_and_different_tasks_differ(env_and_tasks):
    env, tasks = env_and_tasks
    env.set_tasks(tasks)
    assert env.tasks is tasks
    other = metarl.make_distribution(task_env_spec_id(env)).sample(NUM_TASKS, "train", gen(9))
    acts = _actions(env, 25, 3)
    a = torch.stack([x.float() for x in _run(env, acts, seed=1)[2::5]])  # rewards [time, env]
    env.set_tasks(other)
    b = torch.stack([x.float() for x in _run(env, acts, seed=1)[2::5]])
    assert not torch.equal(a, b), "set_tasks did not change the outcome"


def task_env_spec_id(env) -> str:
    return next(
        i
        for i in metarl.list_task_envs()
        if metarl.make_distribution(i).family == env.distribution.family
        and isinstance(env.distribution, type(metarl.make_distribution(i)))
    )


def test_set_tasks_checks_the_number_of_tasks(env_and_tasks):
    env, tasks = env_and_tasks
    with pytest.raises(ValueError, match="num_tasks=2"):
        env.set_tasks(tasks.select([0]))


def test_reset_before_set_tasks_is_an_error():
    env = metarl.make_batched_env("metarl/PointNav-v0", 2)
    with pytest.raises(RuntimeError, match="set_tasks"):
        env.reset()


@pytest.mark.parametrize("env_id", metarl.list_task_envs())
def test_check_task_env_passes_for_every_registered_family(env_id):
    report = metarl.check_task_env(env_id)
    assert report["check_env"] == report["deterministic"] == report["task_changes_outcome"] == "ok"


def test_gymnasium_make_gives_a_single_env_with_settable_task():
    env = gym.make("metarl/PointNav-v0", task={"goal": [0.3, -0.2]})
    env.reset(seed=0)
    _, r, *_ = env.step(np.zeros(2))
    assert r == pytest.approx(-np.hypot(0.3, 0.2))
    env.unwrapped.task = {"goal": np.array([0.0, 0.1])}
    env.reset(seed=0)
    _, r, *_ = env.step(np.zeros(2))
    assert r == pytest.approx(-0.1)


def test_make_vec_builds_the_batched_torch_env():
    vec = gym.make_vec("metarl/PointNav-v0", num_envs=4)
    obs, info = vec.reset(seed=0)
    assert isinstance(obs, torch.Tensor) and obs.shape == (4, 2)
    obs, reward, term, trunc, info = vec.step(torch.full((4, 2), 0.05))
    assert torch.allclose(obs, torch.full((4, 2), 0.05)) and reward.shape == (4,)
