"""Deep-ensemble building blocks whose members share one batched matmul.

Member weights are stacked along a leading dimension ``K``; a forward pass takes inputs
``[K, B, ...]`` and runs every member with one ``torch.bmm``. :func:`route_by_member`
packs rows that each name their member into that layout and back, so a batch where every
row uses a different member still costs one network call.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class StackedLinear(nn.Module):
    """``K`` independent linear layers evaluated together: ``[K, B, n_in] -> [K, B, n_out]``."""

    def __init__(self, members: int, n_in: int, n_out: int, generator: torch.Generator) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(n_in)  # nn.Linear's default initialisation range
        w = (torch.rand(members, n_in, n_out, generator=generator) * 2.0 - 1.0) * bound
        b = (torch.rand(members, 1, n_out, generator=generator) * 2.0 - 1.0) * bound
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        if x.dim() == 4:  # [K, S, T, n_in]: flatten the sequence dims for the batched matmul
            x = x.reshape(shape[0], shape[1] * shape[2], shape[3])
        y = torch.bmm(x, self.weight)
        # bmm then one broadcast add is faster than baddbmm's copy of the bias; in place
        # when no autograd graph needs the product.
        y = y.add_(self.bias) if not torch.is_grad_enabled() else y + self.bias
        return y.reshape(*shape[:-1], -1)


class StackedGRUCell(nn.Module):
    """``K`` GRU cells (PyTorch's gate equations) run together on ``[K, B, n]`` inputs."""

    def __init__(self, members: int, n_in: int, hidden: int, generator: torch.Generator) -> None:
        super().__init__()
        self.hidden = hidden
        self.ih = StackedLinear(members, n_in, 3 * hidden, generator)
        self.hh = StackedLinear(members, hidden, 3 * hidden, generator)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        gi = self.ih(x)
        gh = self.hh(h)
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return (1.0 - z) * n + z * h


def route_by_member(member: torch.Tensor, members: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Slots that pack rows into ``[members, width, ...]``: returns ``(k, pos, width)`` with
    row ``i`` at ``[k[i], pos[i]]`` (rows keep their order within a member); ``width`` is the
    largest member's row count.

    ``pos`` is a running count per member (one-hot ``[members, N]``, cumulative sum along
    the rows): for a handful of members several times faster than a stable sort."""
    n = member.shape[0]
    if n == 0:
        return member, member.clone(), 0
    onehot = (member.unsqueeze(0) == torch.arange(members).unsqueeze(1)).to(torch.int32)
    running = onehot.cumsum_(dim=1)
    pos = running.gather(0, member.unsqueeze(0)).squeeze(0).long() - 1
    return member, pos, int(running[:, -1].max())


def pack(
    x: torch.Tensor,
    k: torch.Tensor,
    pos: torch.Tensor,
    members: int,
    width: int,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Rows ``[N, ...]`` into ``[members, width, ...]``; unused slots are zero, or keep what
    ``out`` (``[members * width, ...]``, written in place) held: finite values whose network
    outputs are never read."""
    if out is None:
        out = x.new_zeros((members * width, *x.shape[1:]))
    # One flat index_copy_ is several times faster than a two-index put.
    out.index_copy_(0, k * width + pos, x)
    return out.view(members, width, *x.shape[1:])


def unpack(
    y: torch.Tensor, k: torch.Tensor, pos: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """The rows of ``[members, width, ...]`` back in their original order ``[N, ...]``
    (written into ``out`` when given)."""
    members, width = y.shape[:2]
    flat = y.reshape(members * width, *y.shape[2:])
    return torch.index_select(flat, 0, k * width + pos, out=out)
