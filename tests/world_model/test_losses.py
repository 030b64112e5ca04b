from __future__ import annotations

import torch

from world_model.distributions import scale_mixture_nll
from world_model.losses import ensemble_loss
from world_model.networks import N_OUT, N_TAIL, TAIL_CHANNELS, TAIL_LOGIT0, decode
from world_model.targets import FUEL, N_TARGETS


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(3, 20, N_OUT, generator=g, requires_grad=True)
    y = torch.randn(20, N_TARGETS, generator=g)
    mask = torch.rand(20, N_TARGETS, generator=g) > 0.4
    return raw, y, mask


def test_changing_a_masked_target_changes_nothing():
    raw, y, mask = _batch()
    loss_a, per_a = ensemble_loss(raw, y, mask=mask)
    (grad_a,) = torch.autograd.grad(loss_a, raw)
    y_changed = torch.where(mask, y, y * 1000.0 + 7.0)
    loss_b, per_b = ensemble_loss(raw, y_changed, mask=mask)
    (grad_b,) = torch.autograd.grad(loss_b, raw)
    assert torch.equal(loss_a, loss_b) and torch.equal(per_a, per_b)
    assert torch.equal(grad_a, grad_b)
    # NaN targets are masked by default and give the same loss
    loss_c, _ = ensemble_loss(raw, torch.where(mask, y, float("nan")))
    assert torch.allclose(loss_a, loss_c)


def test_a_channel_missing_everywhere_gets_no_gradient():
    raw, y, _ = _batch(1)
    y[:, FUEL] = float("nan")
    loss, per = ensemble_loss(raw, y)
    (grad,) = torch.autograd.grad(loss, raw)
    fuel_loc = 9  # decode(): lap mixture (9 values), then the Gaussian locs, fuel first
    fuel_scale = 9 + (N_TARGETS - 1)
    assert per[FUEL] == 0
    assert (grad[..., fuel_loc] == 0).all() and (grad[..., fuel_scale] == 0).all()
    assert (grad[..., 0:9] != 0).any()
    fuel_tail = [TAIL_LOGIT0 + TAIL_CHANNELS.index(FUEL), TAIL_LOGIT0 + N_TAIL]
    assert (grad[..., fuel_tail] == 0).all()


def test_fuel_loss_is_the_scale_mixture_nll_of_its_head():
    raw, y, _ = _batch(2)
    _, per = ensemble_loss(raw, y, mask=torch.ones_like(y, dtype=torch.bool))
    h = decode(raw)
    t = TAIL_CHANNELS.index(FUEL)
    want = scale_mixture_nll(
        h.loc[..., FUEL - 1],
        h.scale[..., FUEL - 1],
        h.tail_logit[..., t],
        h.tail_factor[..., t],
        y[:, FUEL],
    )
    # per-channel loss: the row mean, summed over members
    assert torch.allclose(per[FUEL], want.mean(dim=1).sum(), atol=1e-5)
