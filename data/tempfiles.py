"""Temporary files beside an output (``.store.sqlite.<pid>.tmp``, ``.agent.pt.<pid>.<x>.tmp``)
that a killed run left behind are removed by the next run writing the same output.

A writer names its temporary file with :func:`temp_prefix` (which holds its process id), so a
later run can tell a file whose writer is gone (removed) from one still being written (kept).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path


def temp_prefix(target: Path) -> str:
    """Prefix of this process's temporary files for ``target``: ``.NAME.<pid>.``."""
    return f".{target.name}.{os.getpid()}."


def make_temp_file(target: Path) -> str:
    """A new empty temporary file beside ``target`` (closed), named with this process's id."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=temp_prefix(target), suffix=".tmp")
    os.close(fd)
    return tmp


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def remove_stale_temp_files(target: str | Path) -> list[Path]:
    """Remove ``.NAME.<pid>[.x].tmp`` files beside ``target`` whose process has ended; the
    files removed. Files of live processes (another run writing now) are left alone."""
    target = Path(target)
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(\d+)(\..*)?\.tmp$")
    removed = []
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        match = pattern.match(path.name)
        if match is None or int(match.group(1)) == os.getpid():
            continue
        if not _process_alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
