"""Keep freed memory in the process instead of returning it to the OS (glibc only).

Batched torch code allocates and frees many 1-2 MB tensors per call. glibc serves blocks that
size with ``mmap`` or trims them off the heap when freed, so every call maps fresh pages and
pays a page fault per 4 KiB on first touch (measured: ~15 % of ``LearnedLapModel.sample`` time
at 65,536 rows before it kept its intermediates in a :class:`~world_model.workspace.Workspace`;
little now). Raising the mmap and trim thresholds makes glibc reuse the freed heap instead. It
is a process-wide setting, so only entry points call it (the world-model bench does;
simulation entry points may, for the engine's own tensors).
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD_BYTES = 256 * 1024 * 1024
"""Blocks below this come from the heap; up to this much freed top-of-heap memory is kept."""


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (``mallopt``); False where not glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(
        mallopt(_M_MMAP_THRESHOLD, _THRESHOLD_BYTES)
        and mallopt(_M_TRIM_THRESHOLD, _THRESHOLD_BYTES)
    )
