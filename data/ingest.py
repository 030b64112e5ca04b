"""Ingest telemetry and timing files into the lap store.

``python -m data.ingest PATH... --db FILE [--json]``: directories are walked, each file's reader
is chosen by its content, and each file is written in one transaction (re-ingesting replaces
it). Prints per-file counts; with ``--json`` one JSON object on stdout. Exit status 0 when every
file was read, 1 when some were not, 2 when none could be read.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from data.detect import detect
from data.entry import run_main
from data.errors import IngestError
from data.records import ReadResult
from data.store import (
    StoreWriteError,
    open_store,
    store_error_reason,
    summarize,
    write_result,
)
from data.tempfiles import remove_stale_temp_files

SKIP_NAMES = {"README.md", ".DS_Store"}
SKIP_SUFFIXES = {".wal", ".md", ".tmp", ".sqlite-journal", ".sqlite-wal", ".sqlite-shm"}


def read_file(path: Path) -> ReadResult:
    """Detect the file's format and read it; raises IngestError when it cannot be read."""
    return detect(path)(path)


def expand(paths: list[str]) -> list[Path]:
    """Files named, and the files under directories named (sorted; notes and .wal skipped)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(
                f
                for f in sorted(p.rglob("*"))
                if f.is_file() and f.name not in SKIP_NAMES and f.suffix not in SKIP_SUFFIXES
            )
        else:
            files.append(p)
    return files


def ingest(
    paths: list[str], db: str | Path, progress: bool = False, exclude: tuple[Path, ...] = ()
) -> dict[str, Any]:
    """Ingest files into the store at ``db``; {'files': {path: counts or {'error': ...}}}.

    The store itself (and any path in ``exclude``) is never read as input."""
    conn = open_store(db)
    report: dict[str, Any] = {}
    skip = {Path(db).resolve(), *(p.resolve() for p in exclude)}
    files = [f for f in expand(paths) if f.resolve() not in skip]
    try:
        for path in tqdm(files, desc="ingest", unit="file", disable=not progress, file=sys.stderr):
            if not path.exists():
                report[str(path)] = {"error": f"{path}: no such file"}
                continue
            try:
                result = read_file(path)
                try:
                    write_result(conn, path, result)
                except sqlite3.OperationalError as e:  # the store's fault, not the file's
                    raise StoreWriteError(f"{store_error_reason(e)} (writing {path})") from e
                report[str(path)] = summarize(result)
            except IngestError as e:
                report[str(path)] = {"error": str(e)}
            except (OSError, sqlite3.Error, ValueError) as e:
                # Nothing of this file was stored (its transaction rolled back).
                report[str(path)] = {"error": f"{path}: {type(e).__name__}: {e}"}
    finally:
        conn.close()
    return {"db": str(db), "files": report}


def _format(report: dict[str, Any]) -> str:
    lines = []
    for path, c in report["files"].items():
        if "error" in c:
            lines.append(f"ERROR {c['error']}")
            continue
        flags = ", ".join(f"{k} {v}" for k, v in c["flag_periods"].items()) or "none"
        lines.append(
            f"{path}\n  reader {c['reader']}: {c['sessions']} sessions, {c['cars']} cars,"
            f" {c['laps']} laps, {c['pit_stops']} pit stops, flag periods: {flags},"
            f" {c['incidents']} incidents, {c['weather_samples']} weather samples,"
            f" {c['state_samples']} state samples, {len(c['warnings'])} warnings"
        )
        lines.extend(f"  warning: {w}" for w in c["warnings"][:10])
        if len(c["warnings"]) > 10:
            lines.append(f"  ... {len(c['warnings']) - 10} more warnings")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m data.ingest",
        description="Read telemetry / timing files (LMU DuckDB, rFactor 2 / LMU results XML, "
        "shared-memory JSON, LMU states SQLite, Al Kamel timing CSV) into the SQLite lap store.",
        epilog="Each file's reader is chosen by its content; each file is one transaction and"
        " re-ingesting it replaces its rows. Exit status: 0 every file read, 1 some could not be"
        " read, 2 none could be read (or the store could not be opened).",
    )
    p.add_argument(
        "paths", nargs="+", metavar="PATH", help="files or directories (walked recursively)"
    )
    p.add_argument(
        "--db", required=True, metavar="FILE", help="lap store to create or update (SQLite)"
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="build a new store in a temporary file beside FILE and replace FILE with it at the end"
        " (readers of FILE never see a half-built store)",
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object with per-file counts on stdout"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    target = Path(args.db)
    db = target.with_name(f".{target.name}.{os.getpid()}.tmp") if args.fresh else target
    if args.fresh:
        remove_stale_temp_files(target)
    try:
        report = ingest(args.paths, db, progress=not args.json, exclude=(target,))
        files = report["files"]
        complete = files and not any("error" in c for c in files.values())
        if args.fresh and complete:
            os.replace(db, target)  # the new store replaces the old only once it is complete
        report["db"] = str(target)
    except (ValueError, sqlite3.Error, StoreWriteError) as e:
        print(f"error: lap store {args.db}: {store_error_reason(e)}", file=sys.stderr)
        return 2
    finally:
        if args.fresh and db.exists():
            db.unlink()
    failed = [p for p, c in files.items() if "error" in c]
    report["ok"] = len(files) - len(failed)
    report["failed"] = len(failed)
    if args.json:
        print(json.dumps(report))
    else:
        print(_format(report))
    for p in failed:
        print(files[p]["error"], file=sys.stderr)
    if args.fresh and not complete:
        print(
            f"error: --fresh: not every file was read, so {target} was kept as it was",
            file=sys.stderr,
        )
    if not files or len(failed) == len(files):
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    run_main(main)
