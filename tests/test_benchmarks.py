"""The benchmarks compare like with like: their peers compute what metarl computes."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from metarl.algorithms.maml import MAMLTRPO, MAMLConfig, MetaBatch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("closed_form", [False, True])
def test_maml_per_task_loop_takes_the_batched_update(closed_form: bool) -> None:
    """On the same trajectories, the per-task loop's inner steps and TRPO update (curvature and
    line search included) land on the batched implementation's parameters. With autograd's
    curvature on both sides they do the same number of floating-point operations (the
    benchmark's GFLOP/s columns rest on that); the batched closed-form curvature does fewer."""
    per_task = _load("maml_scaling").PerTaskMAML
    # Damping 0.1: on a problem this small the undamped Fisher is so ill-conditioned that CG
    # amplifies float64 round-off between the two summation orders to 1e-3 by iteration 10.
    cfg = MAMLConfig(
        meta_batch_size=3,
        episodes_per_task=2,
        hidden=(16, 16),
        fvp_subsample=1.0,
        cg_damping=0.1,
    )
    kwargs = {"seed": 1, "env_kwargs": {"max_episode_steps": 20}}
    batched = MAMLTRPO(
        "metarl/PointNav-v0", replace(cfg, closed_form_curvature=closed_form), **kwargs
    )
    loop = per_task("metarl/PointNav-v0", cfg, **kwargs)
    assert not loop.config.closed_form_curvature  # the loop differentiates with autograd
    batched.policy.double()  # float64: the comparison is of the algorithm, not of rounding
    loop.policy.double()
    loop.policy.load_state_dict(batched.policy.state_dict())
    batched.env.set_tasks(batched.sample_tasks(3))
    data = batched.sample(differentiable=True)
    chain = loop.adapt(data.support, create_graph=True)
    for name, value in chain[-1].items():
        torch.testing.assert_close(value, data.chain[-1][name], rtol=1e-10, atol=1e-12)
    flops = [FlopCounterMode(display=False) for _ in range(2)]
    with flops[0]:
        ours = batched.outer_update(data)
    with flops[1]:
        theirs = loop.outer_update(
            MetaBatch(data.support, data.query, data.returns, data.env_steps, chain)
        )
    if closed_form:
        assert 0 < flops[0].get_total_flops() < flops[1].get_total_flops()
    else:
        assert flops[0].get_total_flops() == flops[1].get_total_flops() > 0
    assert ours["optim/line_search_accepted"] == theirs["optim/line_search_accepted"] == 1.0
    assert ours["optim/step_fraction"] == theirs["optim/step_fraction"]
    for a, b in zip(batched.policy.parameters(), loop.policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)
