"""Where does an adapted point-navigation policy stop? A look behind the adaptation curve.

    python experiments/maml_point_nav_probe.py runs/maml_table/maml_trpo_point_nav__2__<time>

Loads a MAML-family run on ``metarl/PointNav-v0`` and re-runs its evaluation protocol on its own
``test`` goals (the run's step sizes and trajectories per step). After each inner step it prints
the mean return of the sampled trajectories (what the adaptation curve reports), the return of
the same adapted weights acting with their mean action, the fraction of episodes that reach the
goal (the episode ends within 0.01 of it), and, for the mean action, the median distance to the
goal at the end of the episode among those that do not reach it. Returns near the paper's after
2-3 steps need the policy to stop on the goal: a point that settles 0.05 away costs about
-0.05 per remaining step.
"""

from __future__ import annotations

import argparse

import torch

import envs  # noqa: F401  (registers metarl/PointNav-v0)
from metarl.adaptation import expand_params, make_actor
from metarl.checkpoint import load_checkpoint
from metarl.registry import make_batched_env
from metarl.sampling import Trajectory, rollout
from metarl.training import build_algorithm, load_run_config, make_evaluator


def summary(traj: Trajectory) -> tuple[float, float, float]:
    """(mean return, fraction of episodes that reach the goal, median final distance of those
    that do not)."""
    ret = float(traj.episode_returns().mean())
    reached = traj.terminated.any(-1)  # [task, env]
    last = traj.mask.sum(-1, keepdim=True) - 1  # index of each episode's last step
    final = -traj.rewards.gather(-1, last)[..., 0]  # reward = -distance after the move
    missed = final[~reached]
    return ret, float(reached.float().mean()), float(missed.median()) if missed.numel() else 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("--seed", type=int, default=0, help="action-noise seed of the probe")
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = load_run_config(args.run_dir)
    algo = build_algorithm(cfg)
    algo.load_state_dict(load_checkpoint(args.run_dir))
    tasks = make_evaluator(cfg).tasks("test")
    n = len(tasks)
    env = make_batched_env(cfg.env, n, algo.config.eval_episodes, seed=args.seed)
    env.set_tasks(tasks)
    policy, rule, lrs = algo.policy, algo.rule, algo.eval_step_sizes()
    gen = torch.Generator().manual_seed(args.seed)
    theta = expand_params({k: v.detach() for k, v in policy.params().items()}, n)
    print(f"# {args.run_dir}: {n} test goals, {env.envs_per_task} trajectories per step")
    print("step | step size | return | reached | mean action: return | reached | missed by")
    for k in range(len(lrs) + 1):
        with torch.no_grad():
            traj = rollout(env, make_actor(policy, theta, n, gen), 1)
            # the policy's smallest std (e^-5 of the action box's half-width): its mean action
            floor = torch.full_like(theta["log_std"], policy.min_log_std)
            mean_action = {**theta, "log_std": floor}
            det = rollout(env, make_actor(policy, mean_action, n, gen), 1)
        ret, reached, _ = summary(traj)
        det_ret, det_reached, missed = summary(det)
        lr = "" if k == 0 else f"{lrs[k - 1]}"
        print(
            f"{k:>4} | {lr:>9} | {ret:>6.2f} | {reached:>7.2f} | {det_ret:>19.2f} | "
            f"{det_reached:>7.2f} | {missed:>9.3f}"
        )
        if k < len(lrs):
            batch = rule.process(traj)
            theta = {
                name: v.detach()
                for name, v in rule.step(policy, theta, batch, lrs[k], create_graph=False).items()
            }


if __name__ == "__main__":
    main()
