"""Can an RL² GRU hold what the tabular-MDP cells ask it to remember, when told what to hold?

    python experiments/rl2_mdp_memory_probe.py --hidden 128 --minutes 5

The MDP cells of RL² Table 2 reward remembering a table of 50 (state, action) mean rewards: a
greedy agent that picks the current state's best posterior-mean reward scores as much as one
that plans (experiments/results/rl2.md). This probe takes the reinforcement learning out: a GRU
with the RL² input (one-hot state, one-hot previous action, previous reward, done flag; the
same ``RecurrentActorCritic.build_input``) reads trials of uniformly random actions on
``metarl/TabularMDP-v0`` and is trained by regression to output, at every step, the
posterior means of the current state's 5 rewards given the trial so far (prior N(1, 1), unit
reward noise, as the task distribution). It prints the fraction of the targets' variance
explained on held-out trials, over steps 50-99 of the 100-step trials (10 episodes of 10),
as training goes on, next to what a memory of only the last W steps would explain.

Variants (fourth session; each isolates one part of the job):

* ``--transition-key``: the RL² input with ``RecurrentActorCritic``'s transition key, the
  one-hot of the (previous state, previous action) pair and its product with the reward;
* ``--prev-obs``: the previous observation appended to the input, so the key's two halves are
  there but the GRU still has to combine them;
* ``--layers 2``: a second GRU layer;
* ``--obs-head``: a ReLU layer of 128 units between the GRU and the output that also sees the
  current observation, so reading out the current state's row need not be done by the GRU.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import envs  # noqa: F401  (registers metarl/TabularMDP-v0)
from metarl.baselines import GreedyMDP
from metarl.policies import RecurrentActorCritic
from metarl.registry import make_batched_env, make_distribution

ENV = "metarl/TabularMDP-v0"
EPISODES = 10
_AGENT = GreedyMDP(EPISODES)  # only its reward posterior is used


def posterior_mean(visits: torch.Tensor, reward_sum: torch.Tensor) -> torch.Tensor:
    """The Normal posterior means of the mean rewards, as the classic MDP agents compute them
    (prior N(1, 1), unit reward noise: the task distribution's)."""
    return _AGENT.reward_posterior(visits, reward_sum)[0]


def trials(net: RecurrentActorCritic, n: int, gen: torch.Generator, prev_obs_input: bool = False):  # noqa: ANN201
    """RL² inputs ``[time, trial, in]`` of random-action trials, the posterior-mean targets
    ``[time, trial, actions]`` for the state the agent is in at each step, and the history
    ``(states, actions, rewards)``, each ``[time, trial]``. ``prev_obs_input`` appends the
    previous observation to the input."""
    env = make_batched_env(ENV, n, 1, seed=int(torch.randint(0, 2**31, (1,), generator=gen)))
    env.set_tasks(make_distribution(ENV).sample(n, "train", gen))
    obs = env.reset(seed=int(torch.randint(0, 2**31, (1,), generator=gen)))
    s_count, a_count = obs.shape[-1], int(env.single_action_space.n)  # type: ignore[attr-defined]
    visits = torch.zeros(n, s_count, a_count)
    reward_sum = torch.zeros(n, s_count, a_count)
    rows = torch.arange(n)
    prev_a = torch.zeros(n, dtype=torch.long)
    prev_r, prev_d = torch.zeros(n), torch.zeros(n)
    prev_obs = torch.zeros_like(obs)
    xs, ys, history = [], [], []
    for _ in range(EPISODES * env.max_episode_steps):
        state = obs.argmax(-1)
        x = net.build_input(obs, prev_a, prev_r, prev_d, prev_obs)
        xs.append(torch.cat([x, prev_obs], -1) if prev_obs_input else x)
        prev_obs = obs
        ys.append(posterior_mean(visits, reward_sum)[rows, state])
        action = torch.randint(0, a_count, (n,), generator=gen)
        obs, reward, terminated, truncated, _ = env.step(action)
        visits[rows, state, action] += 1
        reward_sum[rows, state, action] += reward
        prev_a, prev_r, prev_d = action, reward, (terminated | truncated).float()
        history.append((state, action, reward))
    states, actions, rewards = (torch.stack(h) for h in zip(*history, strict=True))
    return torch.stack(xs), torch.stack(ys), (states, actions, rewards)


def windowed_targets(history, window: int, shape: tuple[int, int, int]) -> torch.Tensor:  # noqa: ANN001
    """The targets an agent would compute remembering only the last ``window`` steps."""
    states, actions, rewards = history
    n = states.shape[1]
    rows = torch.arange(n)
    out = []
    for t in range(states.shape[0]):
        visits, reward_sum = torch.zeros(shape), torch.zeros(shape)
        for k in range(max(0, t - window), t):
            visits[rows, states[k], actions[k]] += 1
            reward_sum[rows, states[k], actions[k]] += rewards[k]
        out.append(posterior_mean(visits, reward_sum)[rows, states[t]])
    return torch.stack(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--hidden", type=int, default=128, help="GRU units")
    p.add_argument("--minutes", type=float, default=5.0, help="training wall-clock")
    p.add_argument("--batch", type=int, default=128, help="trials per Adam step")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--every", type=int, default=200, help="Adam steps between reports")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--transition-key", action="store_true", help="RL²'s transition_key input")
    p.add_argument("--prev-obs", action="store_true", help="append the previous observation")
    p.add_argument("--layers", type=int, default=1, help="GRU layers")
    p.add_argument("--obs-head", action="store_true", help="ReLU layer over [GRU, observation]")
    args = p.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(args.seed)
    probe_env = make_batched_env(ENV, 1, 1)
    net = RecurrentActorCritic(
        probe_env.single_observation_space,
        probe_env.single_action_space,
        args.hidden,
        transition_key=args.transition_key,
    )
    in_dim = net.input_dim + (net.obs_dim if args.prev_obs else 0)
    gru = nn.GRU(in_dim, args.hidden, num_layers=args.layers)
    actions = int(probe_env.single_action_space.n)  # type: ignore[attr-defined]
    head = (
        nn.Sequential(nn.Linear(args.hidden + net.obs_dim, 128), nn.ReLU(), nn.Linear(128, actions))
        if args.obs_head
        else nn.Linear(args.hidden, actions)
    )

    def predict(x: torch.Tensor) -> torch.Tensor:
        out = gru(x)[0]
        return head(torch.cat([out, x[..., : net.obs_dim]], -1) if args.obs_head else out)

    opt = torch.optim.Adam([*gru.parameters(), *head.parameters()], lr=args.lr)
    x_val, y_val, history = trials(net, 512, gen, args.prev_obs)
    late = slice(50, None)
    prior_mse = float(((y_val[late] - 1.0) ** 2).mean())  # predicting the prior mean, 1
    print("# reference: the targets computed from only the last W steps explain")
    table = (512, probe_env.single_observation_space.shape[0], y_val.shape[-1])
    for w in (10, 20, 30, 50):
        mse = float(((windowed_targets(history, w, table)[late] - y_val[late]) ** 2).mean())
        print(f"#   W = {w}: {1 - mse / prior_mse:.3f}")
    variant = ", ".join(
        f
        for f, on in [
            ("transition key", args.transition_key),
            ("previous observation", args.prev_obs),
            (f"{args.layers} layers", args.layers > 1),
            ("observation head", args.obs_head),
        ]
        if on
    )
    print(
        f"# GRU {args.hidden}{f' ({variant})' if variant else ''}, batch {args.batch}, "
        f"lr {args.lr}, {args.minutes} min, 1 thread"
    )
    print("adam steps | trials seen | late-step MSE | explained (vs the prior mean)")
    start, step = time.perf_counter(), 0
    while time.perf_counter() - start < 60 * args.minutes:
        x, y, _ = trials(net, args.batch, gen, args.prev_obs)
        loss = ((predict(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % args.every == 0:
            with torch.no_grad():
                mse = float(((predict(x_val)[late] - y_val[late]) ** 2).mean())
            print(
                f"{step:>10} | {step * args.batch:>11} | {mse:>13.4f} | {1 - mse / prior_mse:.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
