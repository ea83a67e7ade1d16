"""Oracle tests: returns, GAE and the linear baseline against hand-computed numbers."""

import pytest
import torch

from metarl.returns import LinearFeatureBaseline, discounted_returns, gae


def test_discounted_returns_hand_computed():
    # r = [1, 2, 3], gamma = 0.5, no dones:
    # G2 = 3, G1 = 2 + 0.5*3 = 3.5, G0 = 1 + 0.5*3.5 = 2.75
    r = torch.tensor([[1.0, 2.0, 3.0]])
    d = torch.zeros(1, 3, dtype=torch.bool)
    assert torch.allclose(discounted_returns(r, d, 0.5), torch.tensor([[2.75, 3.5, 3.0]]))


def test_discounted_returns_stop_at_done_and_bootstrap():
    # done after step 0: G0 = 1; G1 = 2 + 0.5*G2, G2 = 3 + 0.5*last_value(4) = 5, G1 = 4.5
    r = torch.tensor([[1.0, 2.0, 3.0]])
    d = torch.tensor([[True, False, False]])
    out = discounted_returns(r, d, 0.5, last_value=torch.tensor([4.0]))
    assert torch.allclose(out, torch.tensor([[1.0, 4.5, 5.0]]))


def test_gae_hand_computed():
    # r = [1, 1], V = [0.5, 1.0], last V = 2, gamma = 0.9, lam = 0.8
    # delta1 = 1 + 0.9*2 - 1.0 = 1.8          A1 = 1.8
    # delta0 = 1 + 0.9*1.0 - 0.5 = 1.4        A0 = 1.4 + 0.9*0.8*1.8 = 2.696
    r = torch.tensor([[1.0, 1.0]])
    v = torch.tensor([[0.5, 1.0]])
    d = torch.zeros(1, 2, dtype=torch.bool)
    adv = gae(r, v, d, 0.9, 0.8, last_value=torch.tensor([2.0]))
    assert torch.allclose(adv, torch.tensor([[2.696, 1.8]]))


def test_gae_does_not_cross_done():
    # done at step 0: A0 = r0 - V0 = 1 - 0.5 = 0.5 regardless of what follows.
    r = torch.tensor([[1.0, 100.0]])
    v = torch.tensor([[0.5, 1.0]])
    d = torch.tensor([[True, False]])
    assert gae(r, v, d, 0.9, 0.8)[0, 0].item() == pytest.approx(0.5)


def test_gae_lambda_one_is_returns_minus_values():
    g = torch.Generator().manual_seed(0)
    r, v = torch.randn(3, 7, generator=g), torch.randn(3, 7, generator=g)
    d = torch.rand(3, 7, generator=g) < 0.2
    adv = gae(r, v, d, 0.97, 1.0)
    assert torch.allclose(adv, discounted_returns(r, d, 0.97) - v, atol=1e-5)


def test_linear_baseline_recovers_linear_targets_per_task():
    # Targets built from the baseline's own features are fitted exactly, each task with its own
    # weights; masked steps predict 0.
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(2, 4, 10, 3, generator=g, dtype=torch.float64)
    step = (10 * torch.arange(10)).expand(2, 4, 10)  # t' = t / 100 spans [0, 0.9]
    feats = LinearFeatureBaseline.features(obs, step)
    w = torch.randn(2, feats.shape[-1], generator=g, dtype=torch.float64)
    targets = torch.einsum("tesf,tf->tes", feats, w)
    mask = torch.ones(2, 4, 10, dtype=torch.bool)
    mask[:, :, 8:] = False
    pred = LinearFeatureBaseline(reg_coeff=1e-10).fit_predict(obs, step, targets, mask)
    assert torch.allclose(pred[mask], targets[mask], atol=1e-6)
    assert (pred[~mask] == 0).all()
