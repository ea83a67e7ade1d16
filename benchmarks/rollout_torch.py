"""Env steps per second of the torch backend on 2D point navigation, against Gymnasium.

Rows, for N parallel environments on one CPU thread:
  torch env        : ``env.step`` alone (random actions drawn up front).
  torch + MLP      : the full rollout engine (``metarl.sampling.rollout``) with a 2x64 Gaussian
                     MLP policy sampling every action, recording the trajectory.
  gymnasium sync   : the peer a user would otherwise pick: ``gymnasium.vector.SyncVectorEnv`` over
                     the same family's single NumPy env (``gymnasium.make("metarl/PointNav-v0")``).
  ratio            : each row over Gymnasium's steps/s at the same N (Gymnasium is run at N <= 1024
                     and its per-env rate, which is flat in N, is used above that).

    python benchmarks/rollout_torch.py [--sizes 1024 16384 262144] [--device cuda]
"""

from __future__ import annotations

import argparse
import platform
import time

import gymnasium as gym
import numpy as np
import torch

import envs  # noqa: F401
import metarl
from metarl.policies import make_mlp_policy, sample_action
from metarl.sampling import rollout

ENV_ID = "metarl/PointNav-v0"


def _tasks(n: int) -> metarl.TaskBatch:
    return metarl.make_distribution(ENV_ID).sample(n, "train", torch.Generator().manual_seed(0))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_env(n: int, device: torch.device, steps: int) -> float:
    env = metarl.make_batched_env(ENV_ID, n, device=device)
    env.set_tasks(_tasks(n))
    env.reset(seed=0)
    g = torch.Generator(device=device).manual_seed(0)
    actions = (torch.rand(16, n, 2, generator=g, device=device) - 0.5) * 0.2
    for t in range(10):  # warm-up
        env.step(actions[t % 16])
    _sync(device)
    start = time.perf_counter()
    for t in range(steps):
        env.step(actions[t % 16])
    _sync(device)
    return n * steps / (time.perf_counter() - start)


def bench_rollout(n: int, device: torch.device, episodes: int) -> float:
    env = metarl.make_batched_env(ENV_ID, n, device=device)
    env.set_tasks(_tasks(n))
    policy = make_mlp_policy(env.single_observation_space, env.single_action_space, (64, 64)).to(
        device
    )
    g = torch.Generator(device=device).manual_seed(0)

    @torch.no_grad()
    def act(obs, *_):
        dist = policy.distribution(obs)
        a = sample_action(dist, g)
        return a, dist.log_prob(a), None, None

    rollout(env, act, 1)  # warm-up
    _sync(device)
    start = time.perf_counter()
    traj = rollout(env, act, episodes)
    _sync(device)
    return traj.rewards.numel() / (time.perf_counter() - start)


def bench_gymnasium(n: int, steps: int) -> float:
    vec = gym.vector.SyncVectorEnv(
        [lambda: gym.make(ENV_ID) for _ in range(n)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    vec.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.1, 0.1, size=(16, n, 2)).astype(np.float32)
    start = time.perf_counter()
    for t in range(steps):
        vec.step(actions[t % 16])
    elapsed = time.perf_counter() - start
    vec.close()
    return n * steps / elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 16384, 262144])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    gym_n = min(1024, min(args.sizes))
    gym_sps = bench_gymnasium(gym_n, steps=100)
    print(
        f"# {ENV_ID}, device={device}, torch threads={args.threads}, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}"
    )
    print(f"# gymnasium SyncVectorEnv at N={gym_n}: {gym_sps:,.0f} env steps/s (the peer)")
    print(
        f"| {'N':>7} | {'torch env (steps/s)':>20} | {'x gym':>6} | {'torch + MLP rollout':>20} | {'x gym':>6} |"
    )
    print(f"|{'-' * 9}|{'-' * 22}|{'-' * 8}|{'-' * 22}|{'-' * 8}|")
    for n in args.sizes:
        steps = max(20, min(2000, 20_000_000 // n))
        env_sps = bench_env(n, device, steps)
        roll_sps = bench_rollout(n, device, episodes=1 if n > 100_000 else 3)
        print(
            f"| {n:>7,} | {env_sps:>20,.0f} | {env_sps / gym_sps:>6.0f} | {roll_sps:>20,.0f} | "
            f"{roll_sps / gym_sps:>6.0f} |"
        )


if __name__ == "__main__":
    main()
