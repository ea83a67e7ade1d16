"""Trust-region policy optimization pieces (Schulman et al. 2015, arXiv:1502.05477, appendix C).

The natural-gradient direction solves ``F x = -g`` with conjugate gradient, where ``F`` is the
Hessian of the mean KL divergence between the old and new policies (the Fisher information at the
old parameters) and is only ever touched through Hessian-vector products. The step is scaled to
the edge of the KL ball ``0.5 x^T F x = max_kl`` and then shrunk by a backtracking line search
until the surrogate improves and the KL constraint holds.

MAML-TRPO (Finn et al. 2017) applies this to the *post-adaptation* policies, so the surrogate,
the KL and its Hessian-vector products are all differentiated through the inner gradient steps.
Everything here is agnostic of that: it sees a list of parameters and a closure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["flat_grad", "conjugate_gradient", "trpo_step", "Evaluate", "CurvatureProduct"]

#: ``evaluate() -> (surrogate loss, mean KL to the old policy)`` at the current parameter values,
#: without any graph: what the line search checks.
Evaluate = Callable[[], tuple[torch.Tensor, torch.Tensor]]
#: ``v -> F v`` for a flat vector ``v`` over the parameters: the curvature metric, undamped.
CurvatureProduct = Callable[[torch.Tensor], torch.Tensor]


def flat_grad(
    output: torch.Tensor,
    params: Sequence[torch.Tensor],
    create_graph: bool = False,
    retain_graph: bool | None = None,
) -> torch.Tensor:
    """Gradient of scalar ``output`` with respect to ``params`` as one flat vector."""
    grads = torch.autograd.grad(
        output,
        list(params),
        create_graph=create_graph,
        retain_graph=retain_graph,
        allow_unused=True,
    )
    return torch.cat(
        [
            (torch.zeros_like(p) if g is None else g).reshape(-1)
            for g, p in zip(grads, params, strict=True)
        ]
    )


def conjugate_gradient(
    avp: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    iters: int = 10,
    residual_tol: float = 1e-10,
) -> torch.Tensor:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A`` given ``v -> A v``.

    Stops early once the squared residual drops below ``residual_tol`` (a host sync per
    iteration, off the per-step path).
    """
    return _conjugate_gradient(avp, b, iters, residual_tol)[0]


def _conjugate_gradient(
    avp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int, residual_tol: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, r)`` with ``r = b - A x`` kept by the recurrence, so ``x^T A x = x^T (b - r)``
    costs no further product with ``A``."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(iters):
        ap = avp(p)
        alpha = rr / (p @ ap)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = r @ r
        if float(rr_new) < residual_tol:
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, r


def _assign(params: Sequence[torch.Tensor], flat: torch.Tensor) -> None:
    with torch.no_grad():
        offset = 0
        for p in params:
            n = p.numel()
            p.copy_(flat[offset : offset + n].view_as(p))
            offset += n


def trpo_step(
    params: Sequence[torch.Tensor],
    loss: torch.Tensor,
    kl: torch.Tensor | CurvatureProduct,
    evaluate: Evaluate,
    max_kl: float = 0.01,
    cg_iters: int = 10,
    cg_damping: float = 1e-5,
    ls_max_steps: int = 15,
    ls_backtrack_ratio: float = 0.8,
) -> dict[str, float]:
    """One TRPO update of ``params`` in place; returns the update's metrics.

    Args:
        loss: the surrogate at the current parameters, with its graph (its gradient is the
            direction; for MAML-TRPO that is the second-order meta-gradient).
        kl: a mean KL whose Hessian at the current parameters is the curvature metric (zero
            value and gradient there, e.g. KL(detached pi || pi)), with its graph. Its gradient
            graph is built once and each of the ``cg_iters`` Fisher-vector products is one more
            backward pass through it. Or the product ``v -> F v`` itself, when the caller has a
            cheaper way to form it (MAML-TRPO's factored product through the inner steps).
        evaluate: the surrogate and the true KL constraint after a step (line search).

    Damping ``cg_damping * v`` keeps the metric positive definite (defaults of the MAML
    reproductions: 10 iterations, 1e-5, 15 line-search steps shrinking by 0.8).
    """
    params = list(params)
    g = flat_grad(loss, params, retain_graph=True)
    curvature: CurvatureProduct
    if isinstance(kl, torch.Tensor):
        grad_kl = flat_grad(kl, params, create_graph=True)

        def curvature(v: torch.Tensor) -> torch.Tensor:
            return flat_grad(grad_kl @ v, params, retain_graph=True)

    else:
        curvature = kl

    def fvp(v: torch.Tensor) -> torch.Tensor:
        return curvature(v) + cg_damping * v

    step_dir, residual = _conjugate_gradient(fvp, -g, cg_iters, 1e-10)
    # 0.5 x^T F x from CG's own residual (F x = -g - r): saves one more curvature product.
    shs = 0.5 * (step_dir @ (-g - residual))
    full_step = (step_dir * torch.sqrt(max_kl / shs.clamp(min=1e-12))).detach()
    expected = float(g @ full_step)

    old = torch.cat([p.detach().reshape(-1) for p in params])
    loss_old = float(loss.detach())
    frac, accepted, kl_new, loss_new = 1.0, False, 0.0, loss_old
    for _ in range(ls_max_steps):
        _assign(params, old + frac * full_step)
        with torch.no_grad():
            new_loss, new_kl = evaluate()
        loss_new, kl_new = float(new_loss), float(new_kl)
        if loss_new < loss_old and kl_new <= max_kl:
            accepted = True
            break
        frac *= ls_backtrack_ratio
    if not accepted:
        _assign(params, old)
        loss_new, kl_new = loss_old, 0.0
    return {
        "loss/surrogate_before": loss_old,
        "loss/surrogate": loss_new,
        "optim/kl": kl_new,
        "optim/step_fraction": frac if accepted else 0.0,
        "optim/expected_improvement": expected,
        "optim/line_search_accepted": float(accepted),
    }
