"""The MAML family on small point-navigation problems: variants, evaluation protocol, baselines."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from metarl.adaptation import (
    InnerRule,
    detach_distribution,
    kl_per_task,
    make_actor,
    step_size_schedule,
)
from metarl.algorithms import get_algorithm
from metarl.algorithms.oracle import TaskObservationEnv
from metarl.config import RunConfig, from_dict, load_config
from metarl.evaluation import Evaluator
from metarl.registry import make_batched_env, make_distribution
from metarl.returns import discounted_returns
from metarl.sampling import rollout

ENV = "metarl/PointNav-v0"
SHORT = {"max_episode_steps": 10}
TINY = {
    "meta_batch_size": 3,
    "episodes_per_task": 2,
    "hidden": [8, 8],
    "eval_episodes": 2,
    "eval_num_steps": 2,
}
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _make(name: str, **overrides: object):  # noqa: ANN202
    cls = get_algorithm(name)
    return cls(ENV, from_dict(cls.Config, {**TINY, **overrides}), seed=3, env_kwargs=SHORT)


def test_step_size_schedule_halves_after_the_first_step() -> None:
    # The MAML paper's 2D-navigation test script: 0.5 for the first step, 0.25 afterwards.
    assert step_size_schedule(0.5, (1.0, 0.5), 3) == [0.5, 0.25, 0.25]
    assert step_size_schedule(0.1, (1.0,), 2) == [0.1, 0.1]


@pytest.mark.parametrize(
    "name", ["maml_trpo", "maml_ppo", "fomaml", "meta_sgd", "promp", "reptile"]
)
def test_every_variant_trains_and_reports_a_gradient_step_curve(name: str) -> None:
    algo = _make(name)
    before = [p.detach().clone() for p in algo.meta_parameters()]
    metrics = algo.train_step()
    assert metrics["env_steps"] > 0
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    after = algo.meta_parameters()
    moved = any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    # TRPO may reject every line-search step on a tiny batch; the other outer updates always move.
    assert moved or metrics.get("optim/line_search_accepted", 1.0) == 0.0
    env = make_batched_env(ENV, 2, 2, **SHORT)
    tasks = make_distribution(ENV).sample(2, "test", torch.Generator().manual_seed(0))
    curve = algo.adaptation_curve(env, tasks, torch.Generator().manual_seed(1))
    assert curve.axis == "gradient_step"
    assert curve.points == [0, 1, 2]
    assert curve.returns.shape == (2, 3)


def test_variants_differ_in_the_documented_part_only() -> None:
    c = {
        n: get_algorithm(n).Config()
        for n in ("maml_trpo", "fomaml", "meta_sgd", "promp", "maml_ppo", "reptile")
    }
    assert c["fomaml"].first_order and not c["maml_trpo"].first_order
    assert c["meta_sgd"].meta_sgd and c["meta_sgd"].outer == "trpo"
    assert c["promp"].inner_objective == "lvc" and c["promp"].outer == "ppo"
    assert c["maml_ppo"].outer == "ppo" and c["maml_ppo"].inner_objective == "vpg"
    assert c["reptile"].outer == "reptile"


def test_meta_sgd_learns_its_step_sizes() -> None:
    algo = _make("meta_sgd", max_kl=0.05)
    alpha0 = [a.detach().clone() for a in algo.step_sizes.alpha]
    for _ in range(3):
        algo.train_step()
    assert any(not torch.equal(a, b) for a, b in zip(algo.step_sizes.alpha, alpha0, strict=True))


def test_reptile_moves_toward_the_mean_adapted_weights() -> None:
    algo = _make("reptile", outer_lr=1.0)
    algo.env.set_tasks(algo.sample_tasks(3))
    batch = algo.sample(with_query=False)
    assert batch.query is None and len(batch.support) == 2
    target = {k: v.mean(0) for k, v in algo.adapt(batch.support, create_graph=False)[-1].items()}
    algo.outer_update(batch)
    for name, p in algo.policy.named_parameters():  # epsilon = 1: land on the mean exactly
        torch.testing.assert_close(p.detach(), target[name])


@pytest.mark.parametrize("first_order", [False, True])
def test_sampled_inner_steps_are_the_outer_updates_steps(first_order: bool) -> None:
    """TRPO reuses the inner steps taken while sampling: they must equal the recomputed ones,
    in value and in meta-gradient (second order, or first order for FOMAML)."""
    algo = _make("maml_trpo", num_inner_steps=2, first_order=first_order)
    algo.env.set_tasks(algo.sample_tasks(3))
    batch = algo.sample(differentiable=True)
    assert batch.query is not None
    recomputed = algo.adapt(batch.support, create_graph=not first_order)
    params = list(algo.policy.parameters())
    grads = []
    for chain in (batch.chain, recomputed):
        dist = algo.policy.distribution(batch.query.obs, chain[-1], True)
        loss = -batch.query.mean(dist.log_prob(batch.query.actions) * batch.query.advantages)
        grads.append(torch.autograd.grad(loss.mean(), params))
        assert len(chain) == 3
    for name in recomputed[-1]:
        torch.testing.assert_close(batch.chain[-1][name], recomputed[-1][name])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("closed_form", [True, False])
@pytest.mark.parametrize(("num_inner_steps", "fvp_subsample"), [(1, 1.0), (2, 0.5)])
def test_factored_curvature_product_is_the_hessian_of_the_adapted_kl(
    num_inner_steps: int, fvp_subsample: float, closed_form: bool
) -> None:
    """MAML-TRPO's J^T F' J product, in closed form (metarl.curvature) or by autograd, equals
    the Hessian-vector product of the KL through the inner steps (the direct third-order
    computation), on the same subsamples."""
    algo = _make(
        "maml_trpo",
        num_inner_steps=num_inner_steps,
        fvp_subsample=fvp_subsample,
        inner_lr_multipliers=[1.0, 0.5],
        closed_form_curvature=closed_form,
    )
    algo.policy.double()
    algo.env.set_tasks(algo.sample_tasks(3))
    batch = algo.sample(differentiable=True)
    assert batch.query is not None
    params = list(algo.policy.parameters())
    state = algo.generator.get_state()
    product = algo.curvature(batch.support, batch.query, batch.chain)
    assert callable(product)
    algo.generator.set_state(state)  # the same subsamples for the direct computation
    kl = algo.curvature_kl(batch.support, batch.query, batch.chain)
    grad_kl = torch.cat([g.reshape(-1) for g in torch.autograd.grad(kl, params, create_graph=True)])
    for seed in range(3):
        v = torch.randn(grad_kl.numel(), generator=torch.Generator().manual_seed(seed))
        v = v.double()
        direct = torch.cat(
            [g.reshape(-1) for g in torch.autograd.grad(grad_kl @ v, params, retain_graph=True)]
        )
        torch.testing.assert_close(product(v), direct, rtol=1e-8, atol=1e-10)
    # and the variants outside the factored form keep the KL (Meta-SGD's step sizes are
    # meta-parameters; FOMAML and fvp_through_inner=False use the Fisher at the adapted weights)
    for overrides in ({"meta_sgd": True}, {"first_order": True}, {"fvp_through_inner": False}):
        other = _make("maml_trpo", **overrides)
        other.env.set_tasks(other.sample_tasks(3))
        b = other.sample(differentiable=True)
        assert b.query is not None
        assert isinstance(other.curvature(b.support, b.query, b.chain), torch.Tensor)


@pytest.mark.parametrize("closed_form", [True, False])
def test_subsampled_curvature_is_evaluated_at_the_whole_batch_adapted_weights(
    closed_form: bool,
) -> None:
    """With fvp_subsample < 1 the metric is J_s^T F_s J_s: J_s = I - alpha H_s with H_s the
    inner loss's Hessian on the support subsample at theta, F_s the KL's Hessian on the query
    subsample at the adapted weights the whole support batch gave (not at weights adapted on the
    subsample). Built here by hand, by autograd, from those definitions."""
    algo = _make("maml_trpo", fvp_subsample=0.5, closed_form_curvature=closed_form, inner_lr=0.3)
    algo.policy.double()
    algo.env.set_tasks(algo.sample_tasks(3))
    batch = algo.sample(differentiable=True)
    assert batch.query is not None
    state = algo.generator.get_state()
    product = algo.curvature(batch.support, batch.query, batch.chain)
    assert callable(product)
    algo.generator.set_state(state)  # curvature_product draws the query subsample first
    sub_query = batch.query.subsample(0.5, algo.generator)
    sub_support = batch.support[0].subsample(0.5, algo.generator)
    names = list(batch.chain[0])
    theta = {k: v.detach().clone().requires_grad_() for k, v in batch.chain[0].items()}
    grads = algo.rule.gradients(algo.policy, theta, sub_support, create_graph=True)
    adapted = {k: v.detach().clone().requires_grad_() for k, v in batch.chain[1].items()}
    dist = algo.policy.distribution(sub_query.obs, adapted, True)
    kl = kl_per_task(detach_distribution(dist), dist, sub_query).mean()
    kl_grads = torch.autograd.grad(kl, list(adapted.values()), create_graph=True)

    def hvp(gs: tuple[torch.Tensor, ...] | list[torch.Tensor], at: dict, u: list) -> list:
        dot = sum((g * x).sum() for g, x in zip(gs, u, strict=True))
        return list(torch.autograd.grad(dot, list(at.values()), retain_graph=True))

    def jac(u: list) -> list:  # J_s u, J_s symmetric
        return [x - 0.3 * h for x, h in zip(u, hvp(grads, theta, u), strict=True)]

    sizes = [v[0].numel() for v in theta.values()]
    for seed in range(2):
        v = torch.randn(sum(sizes), generator=torch.Generator().manual_seed(seed)).double()
        u = [
            x.view_as(theta[k][0]).expand_as(theta[k])
            for x, k in zip(v.split(sizes), names, strict=True)
        ]
        w = jac(hvp(kl_grads, adapted, jac(u)))
        expected = torch.cat([x.sum(0).reshape(-1) for x in w])
        torch.testing.assert_close(product(v), expected, rtol=1e-8, atol=1e-10)
    # the sub-adapted weights differ from the whole-batch ones: the test tells the two apart
    stepped = {k: theta[k] - 0.3 * g for k, g in zip(names, grads, strict=True)}
    assert not torch.allclose(stepped["log_std"], batch.chain[1]["log_std"])


def test_inner_step_improves_the_inner_objective_on_its_data() -> None:
    algo = _make("maml_trpo", inner_lr=0.05)
    algo.env.set_tasks(algo.sample_tasks(3))
    support = algo.sample().support
    rule: InnerRule = algo.rule
    theta, adapted = algo.adapt(support, create_graph=False)
    with torch.no_grad():
        before = rule.loss(algo.policy, theta, support[0])
        after = rule.loss(algo.policy, adapted, support[0])
    assert bool((after < before).all())


def test_inner_rule_without_baseline_uses_standardized_returns() -> None:
    env = make_batched_env(ENV, 2, 3, **SHORT)
    env.set_tasks(make_distribution(ENV).sample(2, "train", torch.Generator().manual_seed(0)))
    algo = _make("maml_trpo")
    traj = rollout(env, make_actor(algo.policy, None, 2, torch.Generator().manual_seed(1)))
    plain = InnerRule(baseline="none").process(traj)
    returns = discounted_returns(traj.rewards, traj.dones, 0.99)
    for task in range(2):
        valid = traj.mask[task].flatten()
        r = returns[task].flatten()[valid]
        expected = (r - r.mean()) / (r.std(unbiased=False) + 1e-8)
        torch.testing.assert_close(plain.advantages[task][valid], expected)
    fitted = InnerRule().process(traj)  # the linear baseline changes them
    assert not torch.allclose(fitted.advantages, plain.advantages, atol=1e-3)


def test_oracle_env_appends_the_task_parameters() -> None:
    env = TaskObservationEnv(make_batched_env(ENV, 2, 3, **SHORT))
    tasks = make_distribution(ENV).sample(2, "test", torch.Generator().manual_seed(0))
    env.set_tasks(tasks)
    obs = env.reset()
    assert obs.shape == (6, 4) and env.single_observation_space.shape == (4,)
    torch.testing.assert_close(obs[:, 2:], tasks["goal"].repeat_interleave(3, dim=0))
    obs, *_ = env.step(torch.zeros(6, 2))
    torch.testing.assert_close(obs[3:, 2:], tasks["goal"][1].expand(3, 2))


def test_sampling_by_steps_fills_every_environments_horizon() -> None:
    # the official MAML sampler: a batch is episodes_per_task x horizon env steps per task
    algo = _make("maml_trpo", sample_by_steps=True)
    metrics = algo.train_step()
    # tasks x envs x horizon x (support, query), plus at most one unfinished episode per env
    assert 3 * 2 * 10 * 2 <= metrics["env_steps"] < 3 * 2 * (10 + 10) * 2
    whole = _make("maml_trpo")  # one episode per environment: fewer steps once goals are reached
    assert whole.train_step()["env_steps"] <= 3 * 2 * 10 * 2


@pytest.mark.parametrize("mode", ["share", "lockstep"])
@pytest.mark.parametrize("name", ["maml_trpo", "pretrained_finetune"])
def test_step_budget_evaluation_samples_exactly_its_budget(name: str, mode: str) -> None:
    # the MAML paper's test protocol counted each point's batch in env steps (rllab's sampler)
    def make(**eval_opts: int | str):  # noqa: ANN202
        if name == "maml_trpo":
            return _make(name, **eval_opts)
        cls = get_algorithm(name)
        opts = {"tasks_per_iteration": 2, "envs_per_task": 2, "hidden": [8, 8], **eval_opts}
        return cls(ENV, from_dict(cls.Config, opts), seed=1, env_kwargs=SHORT)

    algo = make(eval_batch_steps=60, eval_batch_envs=3, eval_num_steps=2, eval_batch_mode=mode)
    assert algo.eval_envs_per_task == 3
    result = Evaluator(ENV, num_tasks=2, env_kwargs=SHORT).evaluate(algo, algo.eval_envs_per_task)
    assert result["test"].points == [0, 1, 2]
    curve = algo.adaptation_curve(
        make_batched_env(ENV, 2, 3, **SHORT),
        make_distribution(ENV).sample(2, "test", torch.Generator().manual_seed(0)),
        torch.Generator().manual_seed(1),
    )
    # points x tasks x budget, plus at most one episode per environment (share: the one it
    # finishes past its share; lockstep: the ones completing at the step that meets the budget)
    assert 3 * 2 * 60 <= curve.env_steps < 3 * 2 * (60 + 3 * 10)
    assert torch.isfinite(curve.returns).all()
    with pytest.raises(ValueError, match="eval_batch_steps=50 must be a positive multiple"):
        make(eval_batch_steps=50, eval_batch_envs=3)
    with pytest.raises(ValueError, match="eval_batch_envs=0"):
        make(eval_batch_steps=60, eval_batch_envs=0)
    with pytest.raises(ValueError, match="eval_batch_mode='parallel' is not allowed"):
        make(eval_batch_steps=60, eval_batch_envs=3, eval_batch_mode="parallel")
    with pytest.raises(ValueError, match="eval_batch_mode='lockstep' needs eval_batch_steps"):
        make(eval_batch_mode="lockstep")


@pytest.mark.parametrize("name", ["pretrained_finetune", "oracle"])
def test_baselines_train_and_evaluate(name: str) -> None:
    cls = get_algorithm(name)
    algo = cls(
        ENV,
        from_dict(
            cls.Config,
            {"tasks_per_iteration": 2, "envs_per_task": 2, "hidden": [8, 8], "eval_episodes": 2},
        ),
        seed=1,
        env_kwargs=SHORT,
    )
    algo.train_step()
    result = Evaluator(ENV, num_tasks=2, env_kwargs=SHORT).evaluate(algo, algo.eval_envs_per_task)[
        "test"
    ]
    assert result.axis == "gradient_step"
    assert result.points == ([0, 1, 2, 3] if name == "pretrained_finetune" else [0])


def test_experiment_presets_load_against_their_algorithm() -> None:
    presets = sorted(EXPERIMENTS.glob("maml_*.toml"))
    assert presets, "no experiments/maml_*.toml presets"
    for path in presets:
        cfg = from_dict(RunConfig, load_config(path))
        from_dict(get_algorithm(cfg.algorithm).Config, cfg.algo, f"{path.name}:algo")


@pytest.mark.slow
def test_post_adaptation_return_beats_pre_adaptation() -> None:
    """After 15 meta-iterations on full-length episodes, one inner step helps on test goals."""
    torch.set_num_threads(1)
    cls = get_algorithm("maml_trpo")
    algo = cls(
        ENV,
        cls.Config(meta_batch_size=10, episodes_per_task=10, eval_num_steps=1, eval_episodes=20),
        seed=1,
    )
    for _ in range(15):
        algo.train_step()
    result = Evaluator(ENV, num_tasks=20).evaluate(algo, algo.eval_envs_per_task)["test"]
    pre, post = result.mean
    assert post > pre + 5.0, f"pre-adaptation {pre:.1f}, post-adaptation {post:.1f}"


@pytest.mark.parametrize("name", ["maml_ppo", "promp"])
def test_ppo_outer_update_reuses_the_sampled_inner_steps(name: str) -> None:
    """The clipped-surrogate update's first epoch starts from the inner steps taken while
    sampling; the parameters it lands on are those of recomputing every epoch's steps."""
    algos = [_make(name, outer_epochs=3) for _ in range(2)]
    for algo in algos:
        algo.policy.double()
        algo.optimizer = torch.optim.Adam(algo.meta_parameters(), lr=algo.config.outer_lr)
    algos[1].policy.load_state_dict(algos[0].policy.state_dict())
    algos[0].env.set_tasks(algos[0].sample_tasks(3))
    batch = algos[0].sample(differentiable=True)
    assert batch.query is not None and batch.chain[-1]["log_std"].requires_grad
    reused = algos[0].ppo_update(batch.support, batch.query, batch.chain)
    recomputed = algos[1].ppo_update(batch.support, batch.query)
    assert reused == pytest.approx(recomputed, rel=1e-9, abs=1e-12)
    for a, b in zip(algos[0].policy.parameters(), algos[1].policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_table_script_keeps_each_run_after_its_directory_is_gone(tmp_path, monkeypatch) -> None:
    """experiments/maml_point_nav_table.py copies a listed run's results into its committed
    summaries and builds the same rows from them once the directory (never committed) is gone;
    rows kept from before the summaries print where a preset has no summarized run."""
    import importlib.util
    import json
    import shutil

    from metarl.training import train

    spec = importlib.util.spec_from_file_location(
        "experiments_maml_table", EXPERIMENTS / "maml_point_nav_table.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    cfg = from_dict(
        RunConfig,
        {
            "algorithm": "maml_trpo",
            "env": ENV,
            "name": "tiny_maml",
            "seed": 2,
            "total_env_steps": 120,
            "runs_dir": str(tmp_path / "runs"),
            "env_kwargs": SHORT,
            "eval": {"num_tasks": 4, "splits": ["test"]},
            "algo": {**TINY, "eval_episodes": 2, "eval_num_steps": 1},
        },
    )
    run = train(cfg, progress=False)
    log = tmp_path / "runs.tsv"
    log.write_text(
        "preset\tseed\twall_s\tload_before\tload_after\trun_dir\n"
        f"old_preset\t1\t10.0\t1.0\t1.0\truns/gone\n"
        f"tiny_maml\t2\t3.0\t0.5\t0.6\t{run}\n"
    )
    kept = "| `old_preset` | 1 | -1.00 ± 0.10 | | | | 10 | 1.0-1.0 |"
    summaries = tmp_path / "summaries.json"
    summaries.write_text(json.dumps({"pooled": {"results.json": {"old_preset": kept}}}))
    monkeypatch.setattr(script, "LOG", log)
    monkeypatch.setattr(script, "SUMMARIES", summaries)

    def tables() -> str:
        from contextlib import redirect_stdout
        from io import StringIO

        out = StringIO()
        with redirect_stdout(out):
            script.main()
        return out.getvalue()

    first = tables()
    result = json.loads((run / "results.json").read_text())["maml_trpo"]["test"]
    pairs = zip(result["mean"], result["ci95"], strict=True)
    cells = " | ".join(f"{m:.2f} ± {c:.2f}" for m, c in pairs)
    assert f"| `tiny_maml` | 2 | {cells} |  |  | 3 | 0.5-0.6 |" in first
    assert kept in first
    stored = json.loads(summaries.read_text())["runs"][str(run)]
    assert stored["results"]["results.json"]["num_tasks"] == 4
    shutil.rmtree(run)
    assert tables() == first


def test_paper_test_goals_file_is_what_its_script_writes() -> None:
    """experiments/point_nav_paper_test_goals.json holds the official test script's 40 goals:
    NumPy's legacy stream seeded with 1, whose first draws are 0.417022 and 0.720324, shifted
    to [-0.5, 0.5)."""
    import importlib.util

    from metarl.tasks import TaskBatch

    spec = importlib.util.spec_from_file_location(
        "experiments_paper_goals", EXPERIMENTS / "point_nav_paper_goals.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    stored = TaskBatch.from_json((EXPERIMENTS / "point_nav_paper_test_goals.json").read_text())
    goals = script.paper_goals().params["goal"]
    assert torch.equal(stored.params["goal"], goals) and goals.shape == (40, 2)
    assert torch.allclose(goals[0], torch.tensor([-0.082978, 0.22032449]), atol=1e-6)
    assert stored.family == "point_nav" and stored.split == "test"


def test_committed_table_rows_kept_from_before_the_summaries_are_result_rows() -> None:
    """Every row kept in experiments/results/maml_point_nav_runs.json from before the summaries
    existed is a table row of that preset with numbers (the eighth session's import had taken
    rows of the commands table for nine presets of the fifth table)."""
    import json
    import re

    store = json.loads((EXPERIMENTS / "results" / "maml_point_nav_runs.json").read_text())
    cell = r" -?\d+\.\d\d ± \d+\.\d\d"
    for results, rows in store["pooled"].items():
        for preset, line in rows.items():
            assert re.match(rf"^\| `{re.escape(preset)}` \| [\d,]+ \|{cell}", line), (
                results,
                preset,
                line[:80],
            )
