"""Scratch buffers reused from one sampling call to the next.

Sampling a large batch allocates the same 1-2 MB intermediates chunk after chunk (features,
packed inputs, hidden activations, raw outputs). Fresh allocations of that size are mapped
pages that fault on first touch (thousands of page faults per call, ~15 % of the time);
reusing buffers avoids them. A buffer grows to the largest size asked for and is handed out
as a view of its first elements, so batches of varying size reuse it too.

Not thread-safe: a model that samples from several threads at once needs one workspace per
thread (the engine runs one model per process).
"""

from __future__ import annotations

import math

import torch


class Workspace:
    """Named, growable scratch tensors."""

    def __init__(self) -> None:
        self._flat: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A contiguous tensor of ``shape`` and ``dtype`` whose contents are stale (finite
        values of a previous use, zeros when new). It stays valid until the next ``get`` of
        the same ``name``."""
        need = math.prod(shape)
        flat = self._flat.get(name)
        if flat is None or flat.dtype != dtype or flat.numel() < need:
            # zeros, not empty: padding rows read from a new buffer must be finite numbers
            flat = torch.zeros(max(need, 1), dtype=dtype)
            self._flat[name] = flat
        return flat[:need].view(shape)

    def nbytes(self) -> int:
        """Bytes held."""
        return sum(t.numel() * t.element_size() for t in self._flat.values())
