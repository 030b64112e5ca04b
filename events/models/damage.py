"""Damage from a contact: how bad, whether it ends the race, and what it costs.

A contact ends the car's race with probability ``damage_terminal``; otherwise its severity
(0 none to 1 severe) is Kumaraswamy(``damage_a``, ``damage_b``), a Beta-like law whose
inverse CDF is closed-form, so the sampler draws it from a uniform of an explicit generator.
Damage slows the car by ``damage_lap_loss x severity`` of its lap until repaired, and a
repair in the pits takes ``damage_repair_s x severity²`` (a nose is quick, a suspension not).
A contact also punctures a tyre with probability ``damage_puncture``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch

from events.priors import Prior

PRIORS: dict[str, Prior] = {
    "damage_terminal": Prior(
        math.log(0.05 / 0.95),
        0.6,
        link="sigmoid",
        note="~5 % of contacts that matter end the race (a third of 24 h retirements)",
    ),
    "damage_a": Prior(math.log(0.9), 0.3, link="exp", note="Kumaraswamy a: most damage light"),
    "damage_b": Prior(math.log(3.0), 0.3, link="exp", note="Kumaraswamy b: mean severity ~0.25"),
    "damage_lap_loss": Prior(
        math.log(0.06), 0.4, link="exp", note="severe damage costs ~6 % of a lap (~13 s at Le Mans)"
    ),
    "damage_repair_s": Prior(
        math.log(500.0), 0.4, link="exp", note="a full-severity garage repair ~8 min"
    ),
    "damage_puncture": Prior(
        math.log(0.12 / 0.88), 0.5, link="sigmoid", note="~1 contact in 8 cuts a tyre"
    ),
}


def kumaraswamy_icdf(u: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Inverse CDF of Kumaraswamy(a, b) at ``u`` in (0, 1) (broadcasting)."""
    return (1.0 - (1.0 - u).pow(1.0 / b)).pow(1.0 / a)


def kumaraswamy_moment(n: int, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``E[X^n]`` of Kumaraswamy(a, b): ``b B(1 + n/a, b)``."""
    x = 1.0 + n / a
    return b * torch.exp(torch.lgamma(x) + torch.lgamma(b) - torch.lgamma(x + b))


def lap_loss_fraction(params: dict[str, torch.Tensor], damage: torch.Tensor) -> torch.Tensor:
    """Lap-time loss as a fraction of the lap for unrepaired ``damage``."""
    return params["damage_lap_loss"] * damage


def repair_time_s(params: dict[str, torch.Tensor], damage: torch.Tensor) -> torch.Tensor:
    """Time in the pits to repair ``damage`` [s]."""
    return params["damage_repair_s"] * damage.square()


@dataclass(frozen=True)
class DamageData:
    """Contacts with a known outcome."""

    terminal: torch.Tensor
    """1.0 where the contact ended the car's race, ``[N]``."""
    severity: torch.Tensor | None = None
    """Severity in (0, 1) of the non-terminal contacts whose damage is known, ``[M]``."""


def model(data: DamageData) -> None:
    n = data.terminal.shape[0]
    assert data.terminal.dim() == 1
    p = {name: pyro.sample(name, PRIORS[name].dist()) for name in PRIORS}
    with pyro.plate("contacts", n, dim=-1):
        pyro.sample("terminal", dist.Bernoulli(p["damage_terminal"]), obs=data.terminal)
    if data.severity is not None:
        m = data.severity.shape[0]
        assert data.severity.dim() == 1
        with pyro.plate("damaged", m, dim=-1):
            pyro.sample(
                "severity", dist.Kumaraswamy(p["damage_a"], p["damage_b"]), obs=data.severity
            )
