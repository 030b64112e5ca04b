"""The learned MLP's fast sampling kernel and the threading of sampling calls.

:class:`FusedMLP` runs the ensemble's two input regimes (full inputs, and the timing regime
with the sim-only inputs withheld) in one forward with folded biases; :func:`bucket` keeps
bfloat16 matmuls to a few shapes; :func:`run_chunks_in_threads` spreads whole chunks of a
sampling call over threads of one intra-op thread each.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import TypeVar

import torch

from world_model.networks import N_MIX, N_OUT, MLPEnsemble, activate_
from world_model.threads import torch_threads
from world_model.workspace import Workspace

T = TypeVar("T")
LAP_OUTPUTS = 3 * N_MIX
"""Network outputs of the lap-time mixture head (first in the layout of ``decode``)."""


def bucket(rows: int) -> int:
    """``rows`` rounded up to one of 8 sizes per octave (at least 16): at most 1/8 padding,
    and a few dozen distinct matmul shapes in all."""
    grain = max(16, 1 << max(rows.bit_length() - 4, 0))
    return -(-rows // grain) * grain


def one_intra_op_thread() -> AbstractContextManager[None]:
    """One intra-op thread inside (restored after): sampling's operations are too small for
    intra-op threads, which measured slower than one at every batch size on this project's
    2-core machine (0.65 against 1.11 M car-laps/s at 4,096 rows)."""
    return torch_threads(1)


class FusedMLP:
    """The MLP ensemble's sampling forward: both input regimes in one pass, biases folded
    into the matmuls, rearranged weights cached per dtype (rebuilt when training changes a
    parameter). ``withheld_columns`` / ``withheld_values``: the standardised inputs the
    timing regime replaces, and their fixed values."""

    def __init__(
        self, net: MLPEnsemble, withheld_columns: torch.Tensor, withheld_values: torch.Tensor
    ) -> None:
        self.net = net
        self.withheld_columns = withheld_columns
        self.withheld_values = withheld_values
        self._cache: dict[torch.dtype, tuple[tuple, tuple[torch.Tensor, ...]]] = {}

    def weights(self, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """The MLP's weights rearranged for :meth:`forward`, in ``dtype``, rebuilt
        whenever a parameter changed (training updates the network in place).

        Every bias is folded into its matmul: the inputs carry a constant-1 column, and each
        regime's hidden layer gets one extra constant unit (pre-activation 1, so activation
        ``a(1)``) whose weight row is the next layer's bias divided by ``a(1)``. Layers:
        the first ``[K, F + 1, 2 (H + 1)]`` (full | timing-regime units, the timing half
        with the withheld inputs' weights zeroed and their fixed values in its bias), each
        later hidden layer ``[K, H + 1, H + 1]`` (shared by both regimes' rows), and the
        output ``[K, 2 (H + 1), N_OUT]``: lap-time columns from the timing half, every
        other column from the full half."""
        net = self.net
        key = tuple((id(p), p._version) for p in net.parameters())
        cached = self._cache.get(dtype)
        if cached is not None and cached[0] == key:
            return cached[1]
        with torch.no_grad():
            first, last = net.body[0], net.out
            k, f, h = first.weight.shape
            one = float(activate_(torch.ones(1), net.activation))  # a(1): the constant unit
            cols = self.withheld_columns
            # Timing regime: withheld columns contribute their fixed standardised value
            # (a bias term) instead of the row's value (zeroed weight rows).
            w_timing = first.weight.clone()
            w_timing[:, cols, :] = 0.0
            b_timing = first.bias + torch.matmul(
                self.withheld_values, first.weight[:, cols, :]
            ).unsqueeze(1)
            w1 = first.weight.new_zeros(k, f + 1, 2 * (h + 1))
            for half, (w, bias) in enumerate(((first.weight, first.bias), (w_timing, b_timing))):
                units = slice(half * (h + 1), half * (h + 1) + h)
                w1[:, :f, units] = w
                w1[:, f, units] = bias[:, 0]
                w1[:, f, half * (h + 1) + h] = 1.0
            layers = [w1]
            for layer in net.body[1:]:
                w = layer.weight.new_zeros(k, h + 1, h + 1)
                w[:, :h, :h] = layer.weight
                w[:, h, :h] = layer.bias[:, 0] / one
                w[:, h, h] = 1.0 / one
                layers.append(w)
            wo = last.weight.new_zeros(k, 2 * (h + 1), N_OUT)
            lap, rest = slice(0, LAP_OUTPUTS), slice(LAP_OUTPUTS, N_OUT)
            wo[:, :h, rest] = last.weight[..., rest]
            wo[:, h, rest] = last.bias[:, 0, rest] / one
            wo[:, h + 1 : 2 * h + 1, lap] = last.weight[..., lap]
            wo[:, 2 * h + 1, lap] = last.bias[:, 0, lap] / one
            layers.append(wo)
            weights = tuple(w.to(dtype).contiguous() for w in layers)
        self._cache[dtype] = (key, weights)
        return weights

    def forward(
        self,
        xk: torch.Tensor,
        dtype: torch.dtype,
        out: torch.Tensor | None = None,
        workspace: Workspace | None = None,
    ) -> torch.Tensor:
        """The MLP's two-regime forward in one pass: ``[K, B, F]`` (or ``[K, B, F + 1]`` with
        a last column of ones, :func:`with_ones`) ``-> [K, B, N_OUT]`` float32.

        Same function as running the network on the full and on the timing-regime inputs
        and combining, at about two thirds of the arithmetic and with no separate bias
        additions (:meth:`weights`): the first layer computes both regimes' hidden
        units ``[K, B, 2 (H + 1)]`` with one widened matmul, each later hidden layer views
        them as ``[K, 2 B, H + 1]`` rows for one shared matmul, and the output layer reads
        the lap-time head from the timing half and the other heads from the full half.
        Matmuls run in ``dtype`` (see :mod:`world_model.precision`).
        """
        w1, *hidden, wo = self.weights(dtype)
        if xk.shape[-1] == w1.shape[1] - 1:
            xk = with_ones(xk, w1.dtype)
        k, b, _ = xk.shape
        act, dt = self.net.activation, w1.dtype
        width = w1.shape[2] // 2

        def scratch(name: str, shape: tuple[int, ...]) -> torch.Tensor | None:
            return None if workspace is None else workspace.get(name, shape, dt)

        h = torch.bmm(xk.to(dt), w1, out=scratch("hidden0", (k, b, 2 * width)))
        h = activate_(h, act)  # [K, B, 2 (H + 1)]: full | timing units
        for i, w in enumerate(hidden, start=1):
            h = torch.bmm(
                h.view(k, 2 * b, width), w, out=scratch(f"hidden{i % 2}", (k, 2 * b, width))
            )
            h = activate_(h, act).view(k, b, 2 * width)
        if out is None:
            out = xk.new_empty(k, b, N_OUT, dtype=torch.float32)
        if wo.dtype == out.dtype:
            return torch.bmm(h, wo, out=out)
        return out.copy_(torch.bmm(h, wo, out=scratch("heads", (k, b, N_OUT))))


def with_ones(
    x: torch.Tensor, dtype: torch.dtype, workspace: Workspace | None = None
) -> torch.Tensor:
    """``x`` ``[..., F]`` with a last column of ones (the folded biases' input), in
    ``dtype``."""
    shape = (*x.shape[:-1], x.shape[-1] + 1)
    if workspace is None:
        y = x.new_empty(shape, dtype=dtype)
    else:
        y = workspace.get("inputs", shape, dtype)
    y[..., :-1] = x
    y[..., -1] = 1.0
    return y


def run_chunks_in_threads(
    run: Callable[[slice, Workspace], T],
    chunks: list[slice],
    workspaces: list[Workspace],
    prepare: Callable[[], object] | None = None,
) -> list[T]:
    """``run`` over the chunks on ``workers`` threads of one intra-op thread each, results
    in chunk order. A call's operations are too small for intra-op threads to pay (two
    threads sampled about 30 % slower than one); whole chunks on separate cores do, as
    torch releases the GIL inside each operation. Each row's draw depends only on its
    own inputs and noise, so the result equals the one-thread call's. One worker per
    workspace in ``workspaces``; ``prepare`` runs first, on the calling thread."""
    workers = len(workspaces)
    if prepare is not None:
        prepare()  # e.g. build a shared weight cache before the threads
    parts: list[T | None] = [None] * len(chunks)

    def worker(w: int) -> None:
        with torch.inference_mode():  # thread-local, like the grad mode
            for i in range(w, len(chunks), workers):
                parts[i] = run(chunks[i], workspaces[w])

    with one_intra_op_thread(), ThreadPoolExecutor(max_workers=workers) as pool:
        for done in [pool.submit(worker, w) for w in range(workers)]:
            done.result()
    return parts  # type: ignore[return-value]
