"""Entry points end quietly when the reader of their output goes away."""

from __future__ import annotations

import subprocess
import sys

import pytest

from data.entry import BROKEN_PIPE_EXIT, run_main

_CHATTY = (
    "from data.entry import run_main\n"
    "def main():\n"
    "    for i in range(200_000):\n"
    "        print('row', i)\n"
    "    return 0\n"
    "run_main(main)\n"
)


def test_a_closed_pipe_ends_the_program_without_a_traceback() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHATTY], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout.readline() == b"row 0\n"  # like `| head -1`: read a line, then go
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == BROKEN_PIPE_EXIT
    assert "Traceback" not in err and "BrokenPipeError" not in err


@pytest.mark.parametrize(("returned", "code"), [(0, 0), (None, 0), (2, 2)])
def test_the_exit_code_is_mains(returned, code) -> None:
    with pytest.raises(SystemExit) as ended:
        run_main(lambda: returned)
    assert ended.value.code == code


def test_other_errors_are_not_swallowed() -> None:
    def broken() -> int:
        raise ValueError("a real defect")

    with pytest.raises(ValueError, match="a real defect"):
        run_main(broken)
