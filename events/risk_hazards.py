"""The scenario's risk priors in the incident sampler (:mod:`engine.risks` sets them per
car): the tyre cliff on the puncture hazard, push pace on the failure hazard, and the off
hazard of slicks on a wet track, plus the choice of an incident's kind among four.

Kept apart from :mod:`events.sampler` so the fitted model reads alone; both are pure,
batched functions over ``[R, C]`` (or the ``[k]`` rows that had an incident).
"""

from __future__ import annotations

import torch

from events.interface import CarExposure
from events.models import punctures
from world_model.interface import Compound, PaceMode


def incident_kind(
    v: torch.Tensor,
    h_contact: torch.Tensor,
    h_puncture: torch.Tensor,
    h_off: torch.Tensor | None,
    h_total: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Peel a uniform ``v`` of the cars that had an incident into its kind (contact,
    puncture, off, failure, in proportion to their hazards) and a fresh uniform:
    ``(is_contact, is_puncture, is_off, is_failure, v)``. Without the off hazard (None) the
    arithmetic is exactly that of the three-kind model."""
    total = h_total.double()
    share_c = h_contact.double() / total
    share_p = h_puncture.double() / total
    is_c = v < share_c
    is_p = ~is_c & (v < share_c + share_p)
    if h_off is None:
        is_o = torch.zeros_like(is_c)
        is_f = ~is_c & ~is_p
        v = torch.where(is_c, v / share_c, torch.where(is_p, (v - share_c) / share_p, v))
        v = torch.where(is_f, (v - share_c - share_p) / (1 - share_c - share_p), v)
        return is_c, is_p, is_o, is_f, v
    # An off (slicks in the wet) is a fourth kind between punctures and failures.
    share_o = h_off.double() / total
    is_o = ~is_c & ~is_p & (v < share_c + share_p + share_o)
    is_f = ~is_c & ~is_p & ~is_o
    v = torch.where(
        is_c,
        v / share_c,
        torch.where(
            is_p,
            (v - share_c) / share_p,
            torch.where(is_o, (v - share_c - share_p) / share_o, v),
        ),
    )
    rest = 1 - share_c - share_p - share_o
    v = torch.where(is_f, (v - share_c - share_p - share_o) / rest, v)
    return is_c, is_p, is_o, is_f, v


def risk_hazards(
    exposure: CarExposure, h_puncture: torch.Tensor, h_failure: torch.Tensor
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """The scenario's risk priors on the fitted hazards per car-hour: (off, puncture,
    failure hazards); (None, unchanged, unchanged) when the exposure carries no risks.

    Tyre cliff: the puncture hazard times ``factor ** depth`` past the cliff
    (:func:`events.models.punctures.cliff_depth`). Push: the failure hazard times the push
    factor at push pace. Slicks in the wet: ``off_per_h x wetness²`` on any compound but wets.
    """
    risks = exposure.risks
    if risks is None:
        return None, h_puncture, h_failure
    if exposure.compound is None:
        raise ValueError("CarExposure.risks needs CarExposure.compound (slicks in the wet)")
    depth = punctures.cliff_depth(exposure.tread_min, risks.cliff_tread)
    h_puncture = h_puncture * (risks.cliff_log_factor * depth).exp()
    pushing = exposure.pace_mode == PaceMode.PUSH
    h_failure = h_failure * torch.where(pushing, risks.push_failure_factor, 1.0)
    slick = exposure.compound != int(Compound.WET)
    h_off = torch.where(slick, risks.slick_wet_off_per_h * exposure.wetness.square(), 0.0)
    return h_off, h_puncture, h_failure
