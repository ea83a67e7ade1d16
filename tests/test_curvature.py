"""Closed-form curvature products against autograd (float64, small task-batched problems)."""

from __future__ import annotations

import pytest
import torch

from metarl.adaptation import InnerRule, StepBatch, detach_distribution, kl_per_task
from metarl.curvature import GaussianFisher, PolicyGradientHessian, supports_closed_form
from metarl.policies import CategoricalMLPPolicy, GaussianMLPPolicy

TASKS, N = 3, 9


def _problem(
    hidden: tuple[int, ...], activation: str, action_scale: list[float] | None, low_std: bool
) -> tuple[GaussianMLPPolicy, dict[str, torch.Tensor], StepBatch]:
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2, 2, hidden, activation, 0.8, action_scale=action_scale).double()  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(1)
    params = {
        k: v.detach().expand(TASKS, *v.shape) + 0.3 * torch.randn(TASKS, *v.shape, generator=g)
        for k, v in policy.params().items()
    }
    if low_std:  # one task's first log std below the clamp: no gradient flows through it
        params["log_std"][1, 0] = policy.min_log_std - 0.5
    weight = torch.rand(TASKS, N, generator=g, dtype=torch.float64)
    weight[2, -3:] = 0.0  # padding steps
    batch = StepBatch(
        obs=torch.randn(TASKS, N, 2, generator=g, dtype=torch.float64),
        actions=0.3 * torch.randn(TASKS, N, 2, generator=g, dtype=torch.float64),
        advantages=torch.randn(TASKS, N, generator=g, dtype=torch.float64),
        log_probs=torch.zeros(TASKS, N, dtype=torch.float64),
        weight=weight / weight.sum(1, keepdim=True),
    )
    return policy, params, batch


def _autograd_hvp(loss_fn, params: dict[str, torch.Tensor], v: dict[str, torch.Tensor]):  # noqa: ANN202
    leaves = {k: x.clone().requires_grad_() for k, x in params.items()}
    grads = torch.autograd.grad(loss_fn(leaves), list(leaves.values()), create_graph=True)
    dot = sum((g * v[k]).sum() for k, g in zip(leaves, grads, strict=True))
    hv = torch.autograd.grad(dot, list(leaves.values()))
    return dict(zip(leaves, grads, strict=True)), dict(zip(leaves, hv, strict=True))


CASES = [
    ((7, 5), "relu", [0.1, 0.3], False),
    ((7, 5), "tanh", [0.1, 0.3], True),
    ((6,), "tanh", None, False),
    ((), "relu", None, True),  # a linear policy: no hidden layer
    ((4, 4, 4), "relu", None, False),
]


@pytest.mark.parametrize(("hidden", "activation", "scale", "low_std"), CASES)
def test_policy_gradient_hessian_matches_autograd(hidden, activation, scale, low_std) -> None:
    """Gradient and Hessian-vector product of the inner loss of ``InnerRule`` (vpg)."""
    policy, params, batch = _problem(hidden, activation, scale, low_std)
    rule = InnerRule("vpg")
    v = {k: torch.randn_like(x) for k, x in params.items()}
    grad, hv = _autograd_hvp(lambda p: rule.loss(policy, p, batch).sum(), params, v)
    closed = PolicyGradientHessian(
        policy, params, batch.obs, batch.actions, -batch.weight * batch.advantages
    )
    ours = closed(v)
    for k in params:
        torch.testing.assert_close(closed.gradient[k], grad[k], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(ours[k], hv[k], rtol=1e-9, atol=1e-11)
    if low_std:  # the clamped entry is a constant: zero gradient and curvature through it
        assert closed.gradient["log_std"][1, 0] == 0 and ours["log_std"][1, 0] == 0


@pytest.mark.parametrize(("hidden", "activation", "scale", "low_std"), CASES)
def test_gaussian_fisher_is_the_hessian_of_the_kl(hidden, activation, scale, low_std) -> None:
    """The Gauss-Newton product equals the Hessian of the mean KL where the policies meet."""
    policy, params, batch = _problem(hidden, activation, scale, low_std)
    v = {k: torch.randn_like(x) for k, x in params.items()}
    old = detach_distribution(policy.distribution(batch.obs, params, True))

    def kl(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return kl_per_task(old, policy.distribution(batch.obs, p, True), batch).mean()

    _, fv = _autograd_hvp(kl, params, v)
    ours = GaussianFisher(policy, params, batch.obs, batch.weight, 1.0 / TASKS)(v)
    for k in params:
        torch.testing.assert_close(ours[k], fv[k], rtol=1e-9, atol=1e-11)


def test_products_are_per_task() -> None:
    """Task i's product depends on task i's direction only (the stacked rows do not mix)."""
    policy, params, batch = _problem((5, 5), "tanh", None, False)
    closed = PolicyGradientHessian(
        policy, params, batch.obs, batch.actions, -batch.weight * batch.advantages
    )
    v = {k: torch.randn_like(x) for k, x in params.items()}
    w = {k: x.clone() for k, x in v.items()}
    for x in w.values():
        x[0] += 1.0  # change task 0's direction only
    a, b = closed(v), closed(w)
    for k in params:
        torch.testing.assert_close(a[k][1:], b[k][1:], rtol=0, atol=0)
        assert not torch.equal(a[k][0], b[k][0])


def test_supports_closed_form_names_what_it_differentiates() -> None:
    class Squashed(GaussianMLPPolicy):  # same weights, another function of them
        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return torch.tanh(super().forward(obs))

    assert supports_closed_form(GaussianMLPPolicy(2, 2, (4,), "relu"))
    assert not supports_closed_form(Squashed(2, 2, (4,), "relu"))
    assert not supports_closed_form(CategoricalMLPPolicy(2, 3, (4,), "relu"))
    with pytest.raises(TypeError, match="not a Gaussian MLP"):
        GaussianFisher(
            CategoricalMLPPolicy(2, 3, (4,), "relu"),  # type: ignore[arg-type]
            {},
            torch.zeros(1, 1, 2),
            torch.ones(1, 1),
        )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_products_on_the_gpu_equal_the_cpu_ones() -> None:
    policy, params, batch = _problem((7, 5), "tanh", [0.1, 0.3], True)
    v = {k: torch.randn_like(x) for k, x in params.items()}
    coef = -batch.weight * batch.advantages
    cpu = PolicyGradientHessian(policy, params, batch.obs, batch.actions, coef)
    fisher = GaussianFisher(policy, params, batch.obs, batch.weight)
    cuda = {k: x.cuda() for k, x in params.items()}
    gpu = PolicyGradientHessian(
        policy.cuda(), cuda, batch.obs.cuda(), batch.actions.cuda(), coef.cuda()
    )
    gpu_fisher = GaussianFisher(policy, cuda, batch.obs.cuda(), batch.weight.cuda())
    v_gpu = {k: x.cuda() for k, x in v.items()}
    for ours, theirs in ((cpu(v), gpu(v_gpu)), (fisher(v), gpu_fisher(v_gpu))):
        for k in params:
            torch.testing.assert_close(theirs[k].cpu(), ours[k], rtol=1e-9, atol=1e-11)
