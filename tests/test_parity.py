"""Parity: the single Gymnasium env and the batched torch env of point navigation agree."""

import numpy as np
import torch
from conftest import gen

import metarl


def test_point_nav_single_env_matches_batched_env_over_300_steps_with_resets():
    tasks = metarl.make_distribution("metarl/PointNav-v0").sample(3, "train", gen(4))
    batched = metarl.make_batched_env("metarl/PointNav-v0", 3, 1, dtype=torch.float64)
    batched.set_tasks(tasks)
    singles = [metarl.make_env("metarl/PointNav-v0", task=tasks.select([i])) for i in range(3)]
    g = gen(5)
    # actions beyond the clip range, and a drift toward the goal so that some episodes end early
    actions = 0.3 * torch.randn(300, 3, 2, generator=g, dtype=torch.float64)
    obs_b = batched.reset(seed=0)
    obs_s = np.stack([e.reset(seed=0)[0] for e in singles])
    assert np.array_equal(obs_b.numpy(), obs_s)
    resets = 0
    for a in actions:
        obs_b, r_b, term_b, trunc_b, info = batched.step(a)
        for i, env in enumerate(singles):
            o, r, term, trunc, _ = env.step(a[i].numpy())
            assert np.allclose(info["final_obs"][i].numpy(), o, atol=1e-12, rtol=0)
            assert abs(r_b[i].item() - r) < 1e-12
            assert (term_b[i].item(), trunc_b[i].item()) == (term, trunc)
            if term or trunc:
                o, _ = env.reset()
                resets += 1
            assert np.allclose(obs_b[i].numpy(), o, atol=1e-12, rtol=0)
    assert resets >= 6  # 300 steps of 100-step episodes: at least two resets per env
