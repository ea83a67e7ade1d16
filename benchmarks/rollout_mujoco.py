"""Rollout throughput of the ``mujoco`` backend against its ceiling and the peers a user would pick.

In one run, on MuJoCo robots whose dynamics are randomized per environment (ProMP's RandParams
ranges, ``train`` split), for each N:

* ``ours+policy``  ``make_batched_env(..., backend="mujoco")`` with an MLP policy in the loop
                   (obs -> 64 -> 64 -> Gaussian action, torch, one intra-op thread), autoreset
                   at the 200-step horizon included;
* ``raw batch``    ``mujoco.batch.Batch.step`` on the same randomized models with pre-drawn
                   controls: no policy, no observation, no reward: this machine's ceiling;
* ``sync``/``async`` Gymnasium's ``SyncVectorEnv``/``AsyncVectorEnv`` of Gymnasium's own v5 env
                   of the robot, each env's ``MjModel`` randomized the same way, with the same
                   policy in the loop (NumPy <-> torch each step).

Env steps/s are the median over ``--repeats`` timed runs of ``--steps`` steps after a warm-up;
the contestants of one row are built together and timed in interleaved rounds, so that the load
of a shared machine weighs on all of them alike.
Run ``python benchmarks/rollout_mujoco.py --help``; results: benchmarks/results/rollout_mujoco.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import mujoco.batch
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs.mujoco_locomotion as locomotion  # noqa: E402
from metarl import TaskBatch, make_batched_env, make_distribution  # noqa: E402
from metarl.backends.mujoco_batch import available_threads  # noqa: E402
from metarl.dynamics import PARAMETER_GROUPS, apply_to_model, base_values, dynamics_params  # noqa: E402

ROBOTS = {  # our family id, Gymnasium's v5 env, our family class
    "HalfCheetah": (
        "metarl/HalfCheetahRandParams-v0",
        "HalfCheetah-v5",
        locomotion.HalfCheetahRandParams,
    ),
    "Ant": ("metarl/AntRandParams-v0", "Ant-v5", locomotion.AntRandParams),
    "Hopper": ("metarl/HopperRandParams-v0", "Hopper-v5", locomotion.HopperRandParams),
    "Walker2d": ("metarl/Walker2dRandParams-v0", "Walker2d-v5", locomotion.Walker2dRandParams),
}


class Policy(torch.nn.Module):
    """obs -> 64 -> 64 -> mean; actions ~ N(mean, 0.5^2) from a seeded generator, clipped."""

    def __init__(self, obs_dim: int, act_dim: int, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)  # benchmark script: weights only, not library code
        self.net = torch.nn.Sequential(
            torch.nn.Linear(obs_dim, 64),
            torch.nn.Tanh(),
            torch.nn.Linear(64, 64),
            torch.nn.Tanh(),
            torch.nn.Linear(64, act_dim),
        )
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        mean = self.net(obs.float())
        noise = torch.randn(mean.shape, generator=self.generator)
        return (mean + 0.5 * noise).clamp(-1.0, 1.0)


class Contestant:
    """One way of stepping N environments: ``step()`` advances all of them once."""

    def __init__(self, n: int, step: Callable[[], Any], close: Callable[[], Any] = lambda: None):
        self.n, self.step, self.close = n, step, close


def tasks_for(family_id: str, n: int, seed: int) -> TaskBatch:
    return make_distribution(family_id).sample(n, "train", torch.Generator().manual_seed(seed))


def ours(family_id: str, n: int) -> Contestant:
    env = make_batched_env(family_id, num_tasks=n, backend="mujoco")
    env.set_tasks(tasks_for(family_id, n, 0))
    obs = env.reset(seed=0)
    policy = Policy(obs.shape[1], env.single_action_space.shape[0])
    state = {"obs": obs}

    def step() -> None:
        state["obs"] = env.step(policy(state["obs"]))[0]

    return Contestant(n, step, env.close)


def raw_batch(family_id: str, family_cls: type, n: int) -> Contestant:
    family = family_cls()
    model = family.build_model()
    batch = mujoco.batch.Batch(model, n, nthread=available_threads())
    scales = dynamics_params(tasks_for(family_id, n, 0).params)
    base = base_values(model, list(scales))
    for group, log_scale in scales.items():
        batch.expand(PARAMETER_GROUPS[group])[...] = base[group] * np.exp(log_scale)
    batch.set_const()
    batch.reset()
    controls = np.random.default_rng(0).uniform(-1, 1, (64, n, model.nu))
    ctrl = batch.ctrl
    counter = [0]

    def step() -> None:
        ctrl[...] = controls[counter[0] % 64]
        counter[0] += 1
        batch.step(nstep=family.frame_skip)

    return Contestant(n, step)


def gymnasium_vector(family_id: str, gym_id: str, n: int, vectorization: str) -> Contestant:
    scales = dynamics_params(tasks_for(family_id, n, 0).params)

    def make(i: int) -> Callable[[], gym.Env]:
        def thunk() -> gym.Env:
            env = gym.make(gym_id, max_episode_steps=200)
            inner = env.unwrapped
            task = {k: v[i] for k, v in scales.items()}
            apply_to_model(inner.model, inner.data, base_values(inner.model, list(task)), task)
            return env

        return thunk

    cls = gym.vector.AsyncVectorEnv if vectorization == "async" else gym.vector.SyncVectorEnv
    vec = cls([make(i) for i in range(n)])
    obs, _ = vec.reset(seed=0)
    policy = Policy(obs.shape[1], vec.single_action_space.shape[0])
    state = {"obs": obs}

    def step() -> None:
        action = policy(torch.from_numpy(state["obs"])).numpy()
        state["obs"] = vec.step(action)[0]

    return Contestant(n, step, vec.close)


def race(
    contestants: dict[str, Contestant], steps: dict[str, int], warmup: int, repeats: int
) -> dict[str, float]:
    """Median env steps/s of each contestant, timed in interleaved rounds so that a change in
    the machine's load hits all of them alike."""
    for c in contestants.values():
        for _ in range(warmup):
            c.step()
    times: dict[str, list[float]] = {name: [] for name in contestants}
    for _ in range(repeats):
        for name, c in contestants.items():
            start = time.perf_counter()
            for _ in range(steps[name]):
                c.step()
            times[name].append(time.perf_counter() - start)
    return {
        name: contestants[name].n * steps[name] / statistics.median(t) for name, t in times.items()
    }


def _rate(x: float) -> str:
    return "not run" if math.isnan(x) else f"{x:,.0f}"


def _ratio(ours: float, peer: float) -> str:
    return "-" if math.isnan(peer) else f"{ours / peer:.2f}"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {available_threads()} cores available to this process; Python "
        f"{platform.python_version()}, torch {torch.__version__}, mujoco {mujoco.__version__}, "
        f"gymnasium {gym.__version__}"
    )


def measure_row(robot: str, n: int, args: argparse.Namespace) -> dict[str, float]:
    """Env steps/s of every contestant on ``robot`` with ``n`` envs, and the load when it started."""
    family_id, gym_id, family_cls = ROBOTS[robot]
    load = os.getloadavg()[0]
    contestants = {}
    if n <= args.async_max:
        # Forked first, while this process is small: one process per env.
        try:
            contestants["async"] = gymnasium_vector(family_id, gym_id, n, "async")
        except OSError as err:  # fork can run out of memory on a shared machine
            print(f"AsyncVectorEnv with {n} processes failed: {err}", file=sys.stderr)
    contestants.update(
        ours=ours(family_id, n),
        raw=raw_batch(family_id, family_cls, n),
        sync=gymnasium_vector(family_id, gym_id, n, "sync"),
    )
    steps = {
        "ours": args.steps,
        "raw": args.steps,
        "sync": args.peer_steps,
        "async": args.peer_steps,
    }
    rate = race(contestants, steps, args.warmup, args.repeats)
    for c in contestants.values():
        c.close()
    rate.setdefault("async", float("nan"))
    return {**rate, "load": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[32, 512, 2048], help="N for HalfCheetah"
    )
    parser.add_argument(
        "--robots",
        nargs="*",
        default=["Ant", "Hopper", "Walker2d"],
        help="other robots, run at --other-size",
    )
    parser.add_argument("--other-size", type=int, default=512)
    parser.add_argument(
        "--steps", type=int, default=200, help="timed steps of our backend and the ceiling"
    )
    parser.add_argument(
        "--peer-steps", type=int, default=50, help="timed steps of Gymnasium's vector envs"
    )
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--async-max",
        type=int,
        default=512,
        help="largest N for AsyncVectorEnv (one process per env)",
    )
    parser.add_argument("--out", type=Path, default=None, help="write a markdown report here")
    parser.add_argument("--row", nargs=2, metavar=("ROBOT", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.row:
        print(json.dumps(measure_row(args.row[0], int(args.row[1]), args)))
        return

    load_before = os.getloadavg()
    runs = [("HalfCheetah", n) for n in args.sizes] + [(r, args.other_size) for r in args.robots]
    rows = []
    header = (
        "| robot | N | ours+policy | raw batch (ceiling) | sync | async | ours/ceiling "
        "| ours/sync | ours/async | load (1 min) |"
    )
    print(header)
    print("|---" * 10 + "|")
    for robot, n in runs:
        # Each row in a fresh process: memory one row leaves behind (thousands of MjData) must
        # not make the next row's AsyncVectorEnv fail to fork.
        cmd = [sys.executable, __file__, "--row", robot, str(n), *sys.argv[1:]]
        result = subprocess.run(cmd, check=True, capture_output=True, text=True)
        for line in result.stderr.splitlines():
            if "AsyncVectorEnv" in line:
                print(line, file=sys.stderr)
        rate = json.loads(result.stdout.strip().splitlines()[-1])
        row = (
            f"| {robot} | {n} | {_rate(rate['ours'])} | {_rate(rate['raw'])} "
            f"| {_rate(rate['sync'])} | {_rate(rate['async'])} | {rate['ours'] / rate['raw']:.2f} "
            f"| {_ratio(rate['ours'], rate['sync'])} | {_ratio(rate['ours'], rate['async'])} "
            f"| {rate['load']:.1f} |"
        )
        print(row, flush=True)
        rows.append(row)
    load_after = os.getloadavg()

    if args.out is not None:
        command = "python " + " ".join(sys.argv)
        text = "\n".join(
            [
                "# MuJoCo rollout throughput (env steps/s)",
                "",
                f"Command: `{command}`",
                "",
                f"Machine: {machine()}.",
                "",
                f"Load average (1, 5, 15 min) before: {load_before[0]:.2f}, {load_before[1]:.2f}, "
                f"{load_before[2]:.2f}; after: {load_after[0]:.2f}, {load_after[1]:.2f}, "
                f"{load_after[2]:.2f}.",
                "",
                "Randomized dynamics (ProMP RandParams ranges, train split), one task per env. "
                f"Median of {args.repeats} interleaved runs; ours and the ceiling over {args.steps} steps "
                f"(autoreset at the 200-step horizon {'included' if args.steps >= 200 else 'not reached'}), "
                f"Gymnasium's vector envs over {args.peer_steps} steps, all with the same MLP policy "
                "in the loop except the ceiling. Async: one process per env, not run above N = "
                f"{args.async_max}.",
                "",
                header,
                "|---" * 10 + "|",
                *rows,
                "",
            ]
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
