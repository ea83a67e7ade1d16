"""Reference-gradient tests of the MAML inner loop (float64, small problem).

The MAML meta-objective is ``F(theta) = mean_i L_query_i(theta_i')`` with
``theta_i' = theta - alpha grad L_support_i(theta)`` (Finn et al. 2017, eq. 1). Its gradient from
autograd through the batched inner step must match central finite differences; FOMAML must match
its analytic first-order form ``mean_i grad L_query_i(theta_i')``; and the batched inner step must
equal a Python loop over tasks.
"""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from metarl.adaptation import InnerRule, StepBatch, expand_params
from metarl.algorithms.trpo import _conjugate_gradient, conjugate_gradient
from metarl.policies import GaussianMLPPolicy

TASKS, N, OBS, ACT = 3, 7, 2, 2


def _policy() -> GaussianMLPPolicy:
    torch.manual_seed(0)  # weight init only
    return GaussianMLPPolicy(OBS, ACT, hidden=(6, 5), activation="tanh", init_std=0.7).double()


def _batch(seed: int) -> StepBatch:
    g = torch.Generator().manual_seed(seed)
    w = torch.ones(TASKS, N, dtype=torch.float64)
    w[1, -2:] = 0.0  # padding steps of an early-terminated episode must not count
    w = w / w.sum(-1, keepdim=True)
    return StepBatch(
        obs=torch.randn(TASKS, N, OBS, generator=g, dtype=torch.float64),
        actions=torch.randn(TASKS, N, ACT, generator=g, dtype=torch.float64),
        advantages=torch.randn(TASKS, N, generator=g, dtype=torch.float64),
        log_probs=-2.0 + 0.1 * torch.randn(TASKS, N, generator=g, dtype=torch.float64),
        weight=w,
    )


def _flat(policy: GaussianMLPPolicy) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in policy.parameters()])


def _unflat(policy: GaussianMLPPolicy, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    out, i = {}, 0
    for name, p in policy.named_parameters():
        out[name] = flat[i : i + p.numel()].view_as(p)
        i += p.numel()
    return out


def _meta_objective(policy, rule, theta, supports, query, lr, create_graph):
    chain = rule.adapt(
        policy, expand_params(theta, TASKS), supports, [lr] * len(supports), create_graph
    )
    return rule.loss(policy, chain[-1], query).mean()


def _fd_gradient(f, x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    grad = torch.zeros_like(x)
    for j in range(x.numel()):
        e = torch.zeros_like(x)
        e[j] = eps
        grad[j] = (f(x + e) - f(x - e)) / (2 * eps)
    return grad


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("objective", ["vpg", "lvc"])
@pytest.mark.parametrize("num_steps", [1, 2])
def test_second_order_meta_gradient_matches_finite_differences(
    num_steps: int, objective: str
) -> None:
    policy, rule, lr = _policy(), InnerRule(objective=objective), 0.3  # type: ignore[arg-type]
    supports = [_batch(1 + k) for k in range(num_steps)]
    query = _batch(10)
    x0 = _flat(policy)

    theta = {k: v.clone().requires_grad_() for k, v in _unflat(policy, x0).items()}
    loss = _meta_objective(policy, rule, theta, supports, query, lr, create_graph=True)
    grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(theta.values()))])

    with torch.no_grad():
        fd = _fd_gradient(
            lambda x: _meta_objective(
                policy, rule, _unflat(policy, x), supports, query, lr, create_graph=False
            ),
            x0,
        )
    err = _rel_err(grad, fd)
    assert err < 1e-4, f"relative error {err:.2e} between autograd and finite differences"


def test_first_order_gradient_misses_the_second_order_term() -> None:
    """The check above can fail: without create_graph the gradient differs from FD."""
    policy, rule, lr = _policy(), InnerRule(), 0.3
    supports, query = [_batch(1)], _batch(10)
    x0 = _flat(policy)
    theta = {k: v.clone().requires_grad_() for k, v in _unflat(policy, x0).items()}
    loss = _meta_objective(policy, rule, theta, supports, query, lr, create_graph=False)
    grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(theta.values()))])
    with torch.no_grad():
        fd = _fd_gradient(
            lambda x: _meta_objective(
                policy, rule, _unflat(policy, x), supports, query, lr, create_graph=False
            ),
            x0,
        )
    assert _rel_err(grad, fd) > 1e-3


def _task_loss(policy, params, batch: StepBatch, i: int) -> torch.Tensor:
    """Inner VPG loss of task ``i`` alone, with unbatched weights (the per-task reference)."""
    out = functional_call(policy, params, (batch.obs[i],))
    logp = policy.make_distribution(out).log_prob(batch.actions[i])
    return -(logp * batch.advantages[i] * batch.weight[i]).sum()


def test_fomaml_equals_analytic_first_order_form() -> None:
    policy, rule, lr = _policy(), InnerRule(), 0.3
    support, query = _batch(1), _batch(10)
    theta = {k: v.detach().clone().requires_grad_() for k, v in policy.params().items()}
    loss = _meta_objective(policy, rule, theta, [support], query, lr, create_graph=False)
    fomaml = torch.autograd.grad(loss, list(theta.values()))

    # mean_i grad L_query_i evaluated at theta_i' = theta - lr grad L_support_i(theta)
    expected = [torch.zeros_like(v) for v in theta.values()]
    for i in range(TASKS):
        g = torch.autograd.grad(_task_loss(policy, theta, support, i), list(theta.values()))
        adapted = {
            k: (v - lr * gk).detach().requires_grad_()
            for (k, v), gk in zip(theta.items(), g, strict=True)
        }
        gq = torch.autograd.grad(_task_loss(policy, adapted, query, i), list(adapted.values()))
        expected = [e + q / TASKS for e, q in zip(expected, gq, strict=True)]
    for a, b in zip(fomaml, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_batched_inner_step_equals_per_task_loop() -> None:
    policy, rule, lr = _policy(), InnerRule(), 0.3
    support = _batch(1)
    theta = {k: v.detach() for k, v in policy.params().items()}
    batched = rule.step(policy, expand_params(theta, TASKS), support, lr, create_graph=False)
    for i in range(TASKS):
        params = {k: v.clone().requires_grad_() for k, v in theta.items()}
        grads = torch.autograd.grad(_task_loss(policy, params, support, i), list(params.values()))
        for (name, p), g in zip(params.items(), grads, strict=True):
            torch.testing.assert_close(batched[name][i], p - lr * g, rtol=1e-12, atol=1e-12)


def test_meta_sgd_step_size_gradient_matches_finite_differences() -> None:
    """Meta-SGD learns alpha (same shapes as theta): d F / d alpha from autograd vs FD."""
    policy, rule = _policy(), InnerRule()
    support, query = _batch(1), _batch(10)
    theta = {k: v.detach() for k, v in policy.params().items()}
    names = list(theta)
    a0 = torch.cat([torch.full_like(v, 0.2).reshape(-1) for v in theta.values()])

    def objective(alpha_flat: torch.Tensor, create_graph: bool) -> torch.Tensor:
        alpha, i = {}, 0
        for n in names:
            alpha[n] = alpha_flat[i : i + theta[n].numel()].view_as(theta[n])
            i += theta[n].numel()
        adapted = rule.step(policy, expand_params(theta, TASKS), support, alpha, create_graph)
        return rule.loss(policy, adapted, query).mean()

    a = a0.clone().requires_grad_()
    (grad,) = torch.autograd.grad(objective(a, True), [a])
    with torch.no_grad():
        fd = _fd_gradient(lambda x: objective(x, False), a0)
    assert _rel_err(grad, fd) < 1e-4


def test_lvc_and_vpg_share_the_gradient_at_the_sampling_policy() -> None:
    """ProMP's LVC objective has the policy gradient's gradient where the data were sampled."""
    policy = _policy()
    batch = _batch(1)
    theta = expand_params({k: v.detach() for k, v in policy.params().items()}, TASKS)
    with torch.no_grad():
        batch.log_probs = policy.distribution(batch.obs, theta, True).log_prob(batch.actions)
    vpg = InnerRule("vpg").step(policy, theta, batch, 1.0, False)
    lvc = InnerRule("lvc").step(policy, theta, batch, 1.0, False)
    for k in vpg:
        torch.testing.assert_close(vpg[k], lvc[k], rtol=1e-10, atol=1e-12)


def test_conjugate_gradient_solves_spd_system() -> None:
    g = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, generator=g, dtype=torch.float64)
    a = m @ m.T + 6 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, generator=g, dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, iters=20, residual_tol=1e-20)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=1e-8, atol=1e-10)


def test_unconverged_cg_residual_gives_the_curvature_of_its_iterate() -> None:
    """TRPO scales its step with ``x^T A x`` taken as ``x^T (b - r)`` from CG's residual; the
    identity must hold after a few iterations, not only at convergence."""
    g = torch.Generator().manual_seed(1)
    m = torch.randn(40, 40, generator=g, dtype=torch.float64)
    a = m @ m.T + 0.1 * torch.eye(40, dtype=torch.float64)  # ill-conditioned: 3 steps stay far
    b = torch.randn(40, generator=g, dtype=torch.float64)
    x, r = _conjugate_gradient(lambda v: a @ v, b, 3, 1e-20)
    assert float(torch.linalg.vector_norm(r)) > 1e-3 * float(torch.linalg.vector_norm(b))
    torch.testing.assert_close(x @ (b - r), x @ a @ x, rtol=1e-10, atol=0.0)
