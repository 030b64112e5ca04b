"""The two ensemble architectures: an MLP on the lap's features and a GRU over the stint.

Both output, per member and row, the raw parameters of every head (see :class:`Heads`) in the
standardised target space. The GRU's input at each lap is the lap's features plus the previous
lap's standardised outcomes and their observed-mask, so it can read the stint's history.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.functional import softplus

from world_model.ensemble import StackedGRUCell, StackedLinear
from world_model.targets import ENERGY, FUEL, N_TARGETS

N_MIX = 3
"""Gaussian components of the lap-time head (core pace, traffic, incident laps)."""
N_GAUSS = N_TARGETS - 1
TAIL_CHANNELS = (FUEL, ENERGY)
"""Channels whose head is a two-component Gaussian scale mixture (a core and a wider tail
around one location: more peaked, heavier tails than one Gaussian), not one Gaussian."""
N_TAIL = len(TAIL_CHANNELS)
TAIL_COLUMNS = tuple(c - 1 for c in TAIL_CHANNELS)
"""Positions of the tail channels among the ``N_GAUSS`` Gaussian-family heads."""
N_OUT = 3 * N_MIX + 2 * N_GAUSS + 2 * N_TAIL
"""Layout: lap-time logits, locs and scales (``N_MIX`` each); the other channels' locs and
scales (``N_GAUSS`` each); the tail channels' tail logits and tail scale factors."""
TAIL_LOGIT0 = 3 * N_MIX + 2 * N_GAUSS
"""First output column of the tail logits (then the tail factors)."""
MIN_SCALE = 1e-3


@dataclass(frozen=True)
class Heads:
    """Decoded head parameters in standardised target space; leading dims as the input."""

    lap_logits: torch.Tensor  # [..., N_MIX]
    lap_loc: torch.Tensor  # [..., N_MIX]
    lap_scale: torch.Tensor  # [..., N_MIX]
    loc: torch.Tensor  # [..., N_GAUSS]: fuel, energy, wear x4, tyre temperature
    scale: torch.Tensor  # [..., N_GAUSS] (the core component's for the tail channels)
    tail_logit: torch.Tensor  # [..., N_TAIL]: logit of the tail component's weight
    tail_factor: torch.Tensor  # [..., N_TAIL]: tail scale / core scale (> 1)


def decode(raw: torch.Tensor) -> Heads:
    """Split the network's last layer into head parameters (scales made positive)."""
    m = N_MIX
    return Heads(
        lap_logits=raw[..., :m],
        lap_loc=raw[..., m : 2 * m],
        lap_scale=softplus(raw[..., 2 * m : 3 * m].contiguous()) + MIN_SCALE,
        loc=raw[..., 3 * m : 3 * m + N_GAUSS],
        scale=softplus(raw[..., 3 * m + N_GAUSS : TAIL_LOGIT0].contiguous()) + MIN_SCALE,
        tail_logit=raw[..., TAIL_LOGIT0 : TAIL_LOGIT0 + N_TAIL],
        tail_factor=softplus(raw[..., TAIL_LOGIT0 + N_TAIL :].contiguous()) + 1.0,
    )


TAIL_INIT_WEIGHT = 0.2
TAIL_INIT_FACTOR = 3.0


def _init_heads(layer: StackedLinear) -> None:
    """Start the mixture spread out (components at -1, 0, +2 sd) with unit-ish scales, and
    the tail channels with a fifth of their mass in a component three times as wide."""
    with torch.no_grad():
        layer.weight.mul_(0.1)
        layer.bias.zero_()
        layer.bias[..., N_MIX : 2 * N_MIX] = torch.tensor([-0.5, 0.0, 2.0])
        layer.bias[..., 2 * N_MIX : 3 * N_MIX] = 0.5
        layer.bias[..., 3 * N_MIX + N_GAUSS : TAIL_LOGIT0] = 0.5
        layer.bias[..., TAIL_LOGIT0 : TAIL_LOGIT0 + N_TAIL] = math.log(
            TAIL_INIT_WEIGHT / (1.0 - TAIL_INIT_WEIGHT)
        )
        layer.bias[..., TAIL_LOGIT0 + N_TAIL :] = math.log(math.expm1(TAIL_INIT_FACTOR - 1.0))


ACTIVATIONS = ("silu", "relu")
"""Hidden-unit activations of the MLP (ReLU costs a fraction of SiLU when sampling)."""


def activate_(x: torch.Tensor, activation: str) -> torch.Tensor:
    """``activation`` applied in place (no autograd graph may need ``x``)."""
    return torch.relu_(x) if activation == "relu" else nn.functional.silu(x, inplace=True)


class MLPEnsemble(nn.Module):
    """``members`` MLPs of ``layers`` hidden layers of ``hidden`` units (``activation``:
    one of :data:`ACTIVATIONS`)."""

    arch = "mlp"

    def __init__(
        self,
        n_features: int,
        members: int,
        hidden: int,
        layers: int,
        generator: torch.Generator,
        activation: str = "silu",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}: expected one of {ACTIVATIONS}")
        self.members, self.hidden, self.n_layers = members, hidden, layers
        self.activation = activation
        dims = [n_features] + [hidden] * layers
        self.body = nn.ModuleList(
            StackedLinear(members, a, b, generator) for a, b in itertools.pairwise(dims)
        )
        self.out = StackedLinear(members, hidden, N_OUT, generator)
        _init_heads(self.out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw head outputs ``[K, B, N_OUT]`` of features ``[K, B, n_features]``."""
        inplace = not torch.is_grad_enabled()  # no autograd: reuse the layer's output buffer
        for layer in self.body:
            y = layer(x)
            if inplace:
                x = activate_(y, self.activation)
            else:
                x = torch.relu(y) if self.activation == "relu" else nn.functional.silu(y)
        return self.out(x)


class GRUEnsemble(nn.Module):
    """``members`` recurrent models: encoder, one GRU cell over the stint's laps, and head."""

    arch = "gru"
    activation = "silu"

    def __init__(
        self, n_features: int, members: int, hidden: int, layers: int, generator: torch.Generator
    ) -> None:
        super().__init__()
        self.members, self.hidden, self.n_layers = members, hidden, layers
        self.encode = StackedLinear(members, n_features + 2 * N_TARGETS, hidden, generator)
        self.cell = StackedGRUCell(members, hidden, hidden, generator)
        self.h0 = nn.Parameter(torch.zeros(members, 1, hidden))
        self.body = nn.ModuleList(
            StackedLinear(members, hidden, hidden, generator) for _ in range(max(layers - 1, 0))
        )
        self.out = StackedLinear(members, hidden, N_OUT, generator)
        _init_heads(self.out)

    def initial_state(self, rows: int) -> torch.Tensor:
        """The learned summary state ``[K, rows, hidden]`` a stint (or a stateless call)
        starts from."""
        return self.h0.expand(-1, rows, -1)

    def step(
        self, x: torch.Tensor, prev: torch.Tensor, prev_mask: torch.Tensor, h: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One lap: features ``[K, B, F]``, previous standardised outcomes and mask ``[K, B,
        N_TARGETS]``, state ``[K, B, H]`` -> (raw head outputs, new state)."""
        e = nn.functional.silu(self.encode(torch.cat([x, prev * prev_mask, prev_mask], dim=-1)))
        h = self.cell(e, h)
        y = h
        for layer in self.body:
            y = nn.functional.silu(layer(y))
        return self.out(y), h

    def forward_sequence(
        self, x: torch.Tensor, prev: torch.Tensor, prev_mask: torch.Tensor, reset: torch.Tensor
    ) -> torch.Tensor:
        """Raw outputs ``[K, S, T, N_OUT]`` over windows: ``x`` ``[S, T, F]``, ``prev`` and
        ``prev_mask`` ``[S, T, N_TARGETS]`` (already shifted by one lap), ``reset`` ``[S, T]``
        (True: this lap starts from the summary state with no history)."""
        k = self.members
        s, t, _ = x.shape
        h = self.initial_state(s)
        outs = []
        for i in range(t):
            r = reset[:, i].view(1, s, 1)
            h = torch.where(r, self.initial_state(s), h)
            keep = (~r).float()
            out, h = self.step(
                x[:, i].expand(k, -1, -1),
                prev[:, i].expand(k, -1, -1),
                prev_mask[:, i].expand(k, -1, -1) * keep,
                h,
            )
            outs.append(out)
        return torch.stack(outs, dim=2)


def build_network(
    arch: str,
    n_features: int,
    members: int,
    hidden: int,
    layers: int,
    generator: torch.Generator,
    activation: str = "silu",
) -> MLPEnsemble | GRUEnsemble:
    """The ensemble network of architecture ``arch`` ("mlp" or "gru"; the GRU's dense layers
    are SiLU)."""
    if arch == "mlp":
        return MLPEnsemble(n_features, members, hidden, layers, generator, activation)
    if arch == "gru":
        if activation != "silu":
            raise ValueError("the gru architecture uses SiLU layers only")
        return GRUEnsemble(n_features, members, hidden, layers, generator)
    raise ValueError(f"unknown architecture {arch!r}: expected 'mlp' or 'gru'")
