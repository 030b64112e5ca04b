"""Which number format the learned MLP's hidden-layer matmuls use when sampling.

On CPUs with native bfloat16 dot products (AVX512-BF16 or AMX-BF16) the hidden layers run as
bfloat16 matmuls (oneDNN accumulates in float32), about 2.5-4x faster than float32 at the
sampler's shapes; elsewhere bfloat16 is emulated and slower, so float32 is used. The output
layer's result, the heads and every score are float32 either way. The environment variable
``STINTSIM_WM_MATMUL`` overrides the choice: ``fp32`` (e.g. to compare against a machine
without bfloat16), ``bf16`` or ``auto`` (the default). Training always runs in float32.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch

ENV_VAR = "STINTSIM_WM_MATMUL"
_NATIVE_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def native_bf16() -> bool:
    """Whether this CPU has bfloat16 dot-product instructions (Linux: ``/proc/cpuinfo``
    flags; False where they cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return any(f in flags.split() for f in _NATIVE_FLAGS)


def matmul_dtype() -> torch.dtype:
    """The hidden-layer matmul dtype: ``STINTSIM_WM_MATMUL`` if set, else bfloat16 where the
    CPU computes it natively and float32 otherwise."""
    choice = os.environ.get(ENV_VAR, "auto").strip().lower()
    if choice == "fp32":
        return torch.float32
    if choice == "bf16":
        return torch.bfloat16
    if choice != "auto":
        raise ValueError(f"{ENV_VAR}={choice!r}: expected 'fp32', 'bf16' or 'auto'")
    return torch.bfloat16 if native_bf16() else torch.float32
