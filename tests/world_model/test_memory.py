from __future__ import annotations

import ctypes.util
import subprocess
import sys


def test_keep_freed_memory_applies_on_glibc_and_leaves_the_caller_working():
    # Process-wide: run in a child so the test process's allocator is left alone.
    code = (
        "from world_model.memory import keep_freed_memory\n"
        "import torch\n"
        "ok = keep_freed_memory()\n"
        "x = [torch.ones(1 << 19) for _ in range(8)]\n"
        "print(ok, float(sum(t.sum() for t in x)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    ok, total = out.stdout.split()
    assert float(total) == 8 * (1 << 19)
    if ctypes.util.find_library("c") and sys.platform.startswith("linux"):
        assert ok == "True"
