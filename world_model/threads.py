"""The one way this project changes torch's intra-op thread count for a block of work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads, restoring the count after (None, or the
    count already set: leave it).

    The engine's tensors are small and many: one thread avoids the threads' spin-waiting on a
    loaded machine, and parallelism comes from running chunks in separate processes
    (``engine.backends``)."""
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
