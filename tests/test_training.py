"""Runs end to end: run directory, TensorBoard events, checkpoints and resume, divergence, CLI."""

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import metarl
from metarl.checkpoint import load_checkpoint, save_checkpoint
from metarl.config import ConfigError, RunConfig, from_dict
from metarl.training import DivergenceError, train


def _cfg(tmp_path, total_steps: int, **overrides) -> RunConfig:
    data = {
        "algorithm": "multitask_ppo",
        "env": "metarl/PointNav-v0",
        "name": "t",
        "seed": 3,
        "total_env_steps": total_steps,
        "runs_dir": str(tmp_path),
        "checkpoint_every": 1,
        # no early termination: exactly 4 tasks * 2 envs * 100 steps = 800 steps per iteration
        "env_kwargs": {"goal_tolerance": 0.0},
        "eval": {"num_tasks": 4, "splits": ["test"]},
        "algo": {
            "tasks_per_iteration": 4,
            "envs_per_task": 2,
            "hidden": [16],
            "ppo": {"epochs": 2, "num_minibatches": 2},
        },
    }
    data.update(overrides)
    return from_dict(RunConfig, data)


def test_run_directory_holds_config_tasks_events_checkpoint_and_results(tmp_path):
    run = train(_cfg(tmp_path, 1600), progress=False)
    record = json.loads((run / "config.json").read_text())
    assert record["config"]["seed"] == 3 and record["algo_resolved"]["envs_per_task"] == 2
    tasks = metarl.TaskBatch.from_json((run / "tasks" / "test.json").read_text())
    assert len(tasks) == 4 and tasks.split == "test"
    assert list(run.glob("events.out.tfevents.*"))
    results = json.loads((run / "results.json").read_text())
    assert results["multitask_ppo"]["test"]["num_tasks"] == 4
    assert (run / "adaptation.png").stat().st_size > 1000
    assert load_checkpoint(run)["env_steps"] == 1600


def test_tensorboard_events_hold_the_taxonomy_keys(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = train(_cfg(tmp_path, 1600), progress=False)
    acc = EventAccumulator(str(run))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for key in (
        "meta_train/return",
        "loss/policy",
        "loss/value",
        "optim/approx_kl",
        "time/sps",
        "meta_test/test/return_episode_1",
    ):
        assert key in tags, key
    assert [e.step for e in acc.Scalars("meta_train/return")] == [800, 1600]  # env-step axis


def test_resume_continues_the_same_curve(tmp_path):
    straight = train(_cfg(tmp_path / "a", 2400), progress=False)
    interrupted = train(_cfg(tmp_path / "b", 800), progress=False)
    resumed = train(_cfg(tmp_path / "b", 2400), resume=interrupted, progress=False)
    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    assert a["env_steps"] == b["env_steps"] == 2400
    for k, v in a["policy"].items():
        assert torch.equal(v, b["policy"][k]), k
    assert torch.equal(a["task_generator"], b["task_generator"])


def test_checkpoint_write_is_atomic_and_keeps_the_previous(tmp_path):
    save_checkpoint({"x": 1}, tmp_path)
    save_checkpoint({"x": 2}, tmp_path)
    assert load_checkpoint(tmp_path)["x"] == 2
    assert torch.load(tmp_path / "checkpoint.prev.pt")["x"] == 1
    assert not list(tmp_path.glob(".*.tmp"))
    (tmp_path / "checkpoint.pt").unlink()  # killed between the two renames
    assert load_checkpoint(tmp_path)["x"] == 1


class _NaNRewards(metarl.TaskEnv):
    """A user family in a few lines: 1-D reaching, with a NaN reward to test divergence."""

    class Tasks(metarl.TaskDistribution):
        family = "reach1d"

        def _sample(self, n, split, generator):
            return {"target": 2 * torch.rand(n, generator=generator) - 1}

    distribution = Tasks()
    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float64)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    nan = False

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = 0.0
        return np.array([self.x]), {}

    def step(self, action):
        self.x += float(np.clip(action[0], -1, 1))
        reward = float("nan") if self.nan else -abs(self.x - float(self.task["target"]))
        return np.array([self.x]), reward, False, False, {}


class _NaNReach(_NaNRewards):
    nan = True


def test_a_user_family_registers_and_trains_on_the_gymnasium_backend(tmp_path):
    metarl.register_task_env(
        "user/Reach1D-v0",
        distribution=_NaNRewards.Tasks(),
        entry_point=_NaNRewards,
        max_episode_steps=10,
    )
    assert metarl.make_batched_env("user/Reach1D-v0", 2).__class__.__name__ == "GymnasiumBatchedEnv"
    assert metarl.check_task_env("user/Reach1D-v0")["task_changes_outcome"] == "ok"
    cfg = _cfg(tmp_path, 160, env="user/Reach1D-v0", env_kwargs={})
    run = train(cfg, progress=False)
    assert json.loads((run / "results.json").read_text())["multitask_ppo"]["test"]["num_tasks"] == 4


def test_divergence_stops_the_run_with_a_message(tmp_path):
    metarl.register_task_env(
        "user/NaNReach-v0",
        distribution=_NaNRewards.Tasks(),
        entry_point=_NaNReach,
        max_episode_steps=10,
    )
    with pytest.raises(DivergenceError, match="non-finite"):
        train(_cfg(tmp_path, 1000, env="user/NaNReach-v0", env_kwargs={}), progress=False)


def test_unknown_env_algorithm_and_config_key_are_named_with_what_exists(tmp_path):
    with pytest.raises(ValueError, match=r"'metarl/PointNv-v0'.*Did you mean 'metarl/PointNav-v0'"):
        train(_cfg(tmp_path, 100, env="metarl/PointNv-v0"), progress=False)
    with pytest.raises(ValueError, match=r"algorithm='mutlitask_ppo'.*multitask_ppo"):
        train(_cfg(tmp_path, 100, algorithm="mutlitask_ppo"), progress=False)
    with pytest.raises(ConfigError, match=r"unknown key algo\.envs_per_tsk.*envs_per_task"):
        train(_cfg(tmp_path, 100, algo={"envs_per_tsk": 2}), progress=False)
    with pytest.raises(ConfigError, match=r"config\.total_env_steps='many' must be an integer"):
        _cfg(tmp_path, "many")


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "metarl", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_train_default_smoke_and_eval(tmp_path):
    # the embedded default (MAML-TRPO on 2D navigation), shrunk to two small meta-iterations
    small = [
        "--set",
        "total_env_steps=1000",
        "--set",
        "eval.num_tasks=4",
        "--set",
        "algo.meta_batch_size=2",
        "--set",
        "algo.episodes_per_task=2",
        "--set",
        "algo.eval_episodes=2",
    ]
    out = _cli("train", "--quiet", *small, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run = next((tmp_path / "runs").iterdir())
    assert (run / "adaptation.png").exists() and "step3:" in out.stdout
    results = json.loads((run / "results.json").read_text())["maml_trpo"]
    assert set(results) == {"test", "ood"} and results["test"]["points"] == [0, 1, 2, 3]
    again = _cli("eval", str(run), "--splits", "ood", "--num-tasks", "3", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads((run / "results.json").read_text())["maml_trpo"]["ood"]["num_tasks"] == 3
    # another evaluation protocol goes elsewhere: the run's own results stay
    budget = ["--set", "algo.eval_batch_steps=200", "--set", "algo.eval_batch_envs=2"]
    refused = _cli("eval", str(run), *budget, cwd=tmp_path)
    assert refused.returncode == 2 and "--out" in refused.stderr
    out = tmp_path / "batch_eval"
    other = _cli("eval", str(run), *budget, "--out", str(out), "--splits", "test", cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    assert set(json.loads((out / "results.json").read_text())["maml_trpo"]) == {"test"}
    assert json.loads((run / "results.json").read_text())["maml_trpo"]["ood"]["num_tasks"] == 3
    # the MAML paper's own 40 test goals, drawn by its test script's lockstep sampler
    goals = Path(__file__).resolve().parents[1] / "experiments" / "point_nav_paper_test_goals.json"
    paper = [
        *("--set", f"eval.tasks_file={goals}", "--set", "algo.eval_batch_steps=400"),
        *("--set", "algo.eval_batch_envs=4", "--set", "algo.eval_batch_mode=lockstep"),
    ]
    out = tmp_path / "paper_goals"
    on_goals = _cli("eval", str(run), *paper, "--out", str(out), "--splits", "test", cwd=tmp_path)
    assert on_goals.returncode == 0, on_goals.stderr
    assert json.loads((out / "results.json").read_text())["maml_trpo"]["test"]["num_tasks"] == 40


def test_fixed_evaluation_tasks_replace_the_sampled_ones_of_their_split():
    from metarl.evaluation import Evaluator

    goals = metarl.TaskBatch("point_nav", "test", {"goal": torch.tensor([[0.1, 0.2], [0.3, 0.4]])})
    evaluator = Evaluator("metarl/PointNav-v0", ("test", "ood"), 5, fixed_tasks={"test": goals})
    assert evaluator.tasks("test") is goals and len(evaluator.tasks("ood")) == 5
    with pytest.raises(ValueError, match="evaluated splits are \\['test'\\]"):
        Evaluator("metarl/PointNav-v0", ("test",), fixed_tasks={"ood": goals})
    arms = metarl.TaskBatch("bandit", "test", {"p": torch.rand(2, 5)})
    with pytest.raises(ValueError, match="family 'bandit' cannot be evaluated on metarl/PointNav"):
        Evaluator("metarl/PointNav-v0", ("test",), fixed_tasks={"test": arms})


def test_cli_eval_uses_the_runs_torch_threads(tmp_path):
    from metarl.cli import main

    before = torch.get_num_threads()
    try:
        run = train(_cfg(tmp_path, 800, torch_threads=2), progress=False)
        torch.set_num_threads(1)
        assert main(["eval", str(run), "--num-tasks", "2"]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_cli_list_and_bad_input(tmp_path):
    out = _cli("list", cwd=tmp_path)
    assert out.returncode == 0 and "metarl/PointNav-v0" in out.stdout and "maml_trpo" in out.stdout
    assert "ucb1" in out.stdout and "metarl/HalfCheetahVel-v0" in out.stdout
    bad = _cli("train", "--set", "algo.lr=1", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown key algo.lr" in bad.stderr
    missing = _cli("train", "nope.toml", cwd=tmp_path)
    assert missing.returncode == 2 and "presets" in missing.stderr


def test_sigint_saves_a_checkpoint_before_exit(tmp_path):
    import signal
    import time

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "metarl",
            "train",
            "--quiet",
            "--set",
            "total_env_steps=100000000",
            "--set",
            "checkpoint_every=1000",
            "--set",
            "algo.meta_batch_size=2",
            "--set",
            "algo.episodes_per_task=2",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 120
        while not list(tmp_path.glob("runs/*/events.out.tfevents.*")) and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(3.0)  # iterations in, long before the first periodic checkpoint
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    run = next((tmp_path / "runs").iterdir())
    assert load_checkpoint(run)["env_steps"] >= 0  # the checkpoint written on the signal
    assert not (run / "results.json").exists()  # interrupted: no final evaluation
