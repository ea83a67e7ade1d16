"""Training throughput of metarl's RL² against sb3-contrib's RecurrentPPO on the same bandit task.

Both learn k-armed Bernoulli bandits with trials of n pulls (RL², Table 1) and are timed over
whole training iterations (rollouts *and* PPO updates), in the same process on the same machine:

* metarl ``RL2``: thousands of trials stepped together as torch tensors, a GRU, PPO over whole
  trial sequences;
* sb3-contrib ``RecurrentPPO`` (LSTM): the peer an SB3 user would pick. A trial is made one
  Gymnasium episode by :class:`TrialWrapper`, which draws a new bandit at each reset, runs n pulls
  and appends (one-hot previous action, previous reward) to the observation, as RL² does.

Both use one recurrent layer of the same width shared by actor and critic with linear heads, and
4 PPO epochs of 4 minibatches. Run::

    python benchmarks/rl2_throughput.py                   # n=10, k=5, hidden 64 and 256
    python benchmarks/rl2_throughput.py --hidden 256 --pulls 100

It prints a table of env steps/s and the ratio (goal: >= 10x).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import envs  # noqa: F401  (registers the families)
from metarl.algorithms.ppo import PPOConfig
from metarl.algorithms.rl2 import RL2, RL2Config
from metarl.registry import make_distribution, make_env
from metarl.runtime import keep_freed_memory, set_torch_threads


class TrialWrapper(gym.Env):
    """One RL² trial (n pulls of one freshly drawn bandit) as one Gymnasium episode.

    Observation: ``[one-hot previous arm (k), previous reward, first-pull flag]``.
    """

    def __init__(self, num_arms: int, pulls: int, seed: int = 0):
        super().__init__()
        self.env = make_env("metarl/Bandit-v0", num_arms=num_arms).unwrapped
        self.dist = make_distribution("metarl/Bandit-v0", num_arms=num_arms)
        self.generator = torch.Generator().manual_seed(seed)
        self.k, self.n = num_arms, pulls
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(num_arms + 2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(num_arms)
        self.t = 0

    def _obs(self, action: int | None, reward: float) -> np.ndarray:
        obs = np.zeros(self.k + 2, dtype=np.float32)
        if action is None:
            obs[-1] = 1.0
        else:
            obs[action] = 1.0
            obs[self.k] = reward
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):  # type: ignore[override]
        super().reset(seed=seed)
        self.env.set_task(self.dist.sample(1, "train", self.generator))
        self.env.reset(seed=seed)
        self.t = 0
        return self._obs(None, 0.0), {}

    def step(self, action: Any):  # type: ignore[override]
        _, reward, *_ = self.env.step(int(action))
        self.t += 1
        return self._obs(int(action), float(reward)), float(reward), self.t >= self.n, False, {}


def time_rl2(num_arms: int, pulls: int, hidden: int, tasks: int, iterations: int) -> float:
    cfg = RL2Config(
        tasks_per_iteration=tasks,
        episodes_per_trial=pulls,
        hidden_size=hidden,
        ppo=PPOConfig(epochs=4, num_minibatches=4, gamma=0.99, gae_lambda=0.3),
    )
    algo = RL2("metarl/Bandit-v0", cfg, seed=1, env_kwargs={"num_arms": num_arms})
    algo.train_step()  # warm-up (allocations, first-call overheads)
    start, steps = time.perf_counter(), 0
    for _ in range(iterations):
        steps += int(algo.train_step()["env_steps"])
    return steps / (time.perf_counter() - start)


def time_recurrent_ppo(
    num_arms: int, pulls: int, hidden: int, total_steps: int, num_envs: int = 8
) -> float:
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([lambda i=i: TrialWrapper(num_arms, pulls, seed=i) for i in range(num_envs)])
    n_steps = max(pulls, 128)
    model = RecurrentPPO(
        "MlpLstmPolicy",
        venv,
        n_steps=n_steps,
        batch_size=n_steps * num_envs // 4,
        n_epochs=4,
        gamma=0.99,
        gae_lambda=0.3,
        seed=1,
        device="cpu",
        verbose=0,
        policy_kwargs=dict(
            lstm_hidden_size=hidden,
            n_lstm_layers=1,
            shared_lstm=True,
            enable_critic_lstm=False,
            net_arch=[],
        ),
    )
    model.learn(n_steps * num_envs)  # warm-up iteration
    start = time.perf_counter()
    model.learn(total_steps, reset_num_timesteps=True)
    steps = model.num_timesteps
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arms", type=int, default=5)
    parser.add_argument("--pulls", type=int, default=10)
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--tasks", type=int, default=1000, help="RL² trials per iteration")
    parser.add_argument("--iterations", type=int, default=5, help="timed RL² iterations")
    parser.add_argument("--sb3-steps", type=int, default=20_480, help="timed RecurrentPPO steps")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads for both (0: every core)"
    )
    args = parser.parse_args()
    keep = keep_freed_memory()  # as `metarl train` does; the same process runs the peer
    threads = set_torch_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"bandit k={args.arms} arms, trials of n={args.pulls} pulls; torch threads {threads} "
        f"(both); keep_freed_memory {keep}; load average {load:.2f}"
    )
    print(f"{'hidden':>6} | {'metarl RL2 steps/s':>18} | {'RecurrentPPO steps/s':>20} | ratio")
    for hidden in args.hidden:
        ours = time_rl2(args.arms, args.pulls, hidden, args.tasks, args.iterations)
        peer = time_recurrent_ppo(args.arms, args.pulls, hidden, args.sb3_steps)
        print(f"{hidden:>6} | {ours:>18,.0f} | {peer:>20,.0f} | {ours / peer:.1f}x", flush=True)


if __name__ == "__main__":
    main()
