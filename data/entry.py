"""How every command-line entry point ends: with ``main``'s exit code, and quietly when the
reader of its output goes away (``stintsim evaluate ... | head``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

BROKEN_PIPE_EXIT = 141
"""What a shell reports for a program ended by SIGPIPE (128 + 13), as other tools do."""
INTERRUPTED_EXIT = 130
"""What a shell reports for a program ended by Ctrl-C (128 + SIGINT 2)."""


def run_main(main: Callable[[], int | None]) -> NoReturn:
    """``sys.exit(main())``, except that a closed stdout ends the program without a
    traceback: the output nobody reads any more is dropped, not reported as an error; and
    Ctrl-C ends it with one line and exit status 130 (every writer replaces its output
    atomically, so nothing half-written is left)."""
    try:
        code = int(main() or 0)
        sys.stdout.flush()  # a pipe closed after the last print fails here, inside the guard
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at devnull so that flush is silent.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = BROKEN_PIPE_EXIT
    except KeyboardInterrupt:
        print(
            "interrupted (Ctrl-C): stopped; outputs already written are complete", file=sys.stderr
        )
        code = INTERRUPTED_EXIT
    sys.exit(code)
