"""The training loss: per-channel negative log-likelihood, masked where a channel is unknown.

Lap time: a Gaussian mixture; fuel and energy: two-Gaussian scale mixtures; the other channels:
Gaussians (see :mod:`world_model.networks`)."""

from __future__ import annotations

import torch

from world_model.distributions import gaussian_nll, mixture_nll, scale_mixture_nll
from world_model.networks import TAIL_COLUMNS, decode


def channel_nll(
    raw: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """NLL ``[K, B, N_TARGETS]`` of standardised targets ``y`` ``[B, N_TARGETS]`` under each
    member's heads ``raw`` ``[K, B, N_OUT]``; 0 where ``mask`` is False (default: where ``y``
    is NaN), with no gradient flowing from there."""
    if mask is None:
        mask = ~y.isnan()
    y0 = torch.where(mask, y, 0.0).unsqueeze(0)
    h = decode(raw)
    lap = mixture_nll(h.lap_logits, h.lap_loc, h.lap_scale, y0[..., 0])
    rest = gaussian_nll(h.loc, h.scale, y0[..., 1:])
    tail = list(TAIL_COLUMNS)
    rest[..., tail] = scale_mixture_nll(
        h.loc[..., tail], h.scale[..., tail], h.tail_logit, h.tail_factor, y0[..., 1:][..., tail]
    )
    nll = torch.cat([lap.unsqueeze(-1), rest], dim=-1)
    return torch.where(mask.unsqueeze(0), nll, 0.0)


def ensemble_loss(
    raw: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over channels of the mean NLL over rows where the channel is observed, averaged
    over members; ``weight`` ``[K, B]`` are per-member row weights (bootstrap); ``mask``
    ``[B, N_TARGETS]`` marks observed targets (default: not NaN). Returns the scalar loss and
    the per-channel mean NLL ``[N_TARGETS]`` (0 for unobserved channels)."""
    if mask is None:
        mask = ~y.isnan()
    nll = channel_nll(raw, y, mask)
    mask = mask.float().unsqueeze(0)
    w = mask if weight is None else mask * weight.unsqueeze(-1)
    per_channel = (nll * w).sum(dim=(0, 1)) / w.sum(dim=(0, 1)).clamp(min=1e-9)
    observed = mask.sum(dim=(0, 1)) > 0
    return per_channel[observed].sum(), torch.where(observed, per_channel, 0.0).detach()
