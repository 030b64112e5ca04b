"""Which reader a file needs, decided by its content (magic bytes, XML root, JSON, CSV header).

:func:`detect` returns the reader function itself; :data:`READERS` is the one table of readers
by format name (:func:`detect_kind` gives the name).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from data.errors import IngestError
from data.readers import alkamel, lmu_duckdb, rf2_xml, sharedmem, states_sqlite
from data.records import ReadResult

Reader = Callable[[Path], ReadResult]
"""A reader: the file in, every row it holds out; raises IngestError naming the file."""

READERS: dict[str, Reader] = {
    "alkamel_csv": alkamel.read_laps,
    "alkamel_results": alkamel.read_results,
    "alkamel_weather": alkamel.read_weather,
    "rf2_xml": rf2_xml.read_rf2_xml,
    "lmu_sharedmem_json": sharedmem.read_sharedmem_json,
    "lmu_states_sqlite": states_sqlite.read_states_sqlite,
    "lmu_duckdb": lmu_duckdb.read_lmu_duckdb,
}
"""Format name -> its reader."""


def detect(path: Path) -> Reader:
    """The reader for ``path`` (see :func:`detect_kind`)."""
    return READERS[detect_kind(path)]


def _looks_utf16(head: bytes) -> bool:
    """A UTF-16 byte-order mark, or ASCII text with a NUL byte beside every character."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    sample = head[: len(head) // 2 * 2]
    if len(sample) < 4:
        return False
    even, odd = sample[0::2], sample[1::2]
    return (odd.count(0) == len(odd) and 0 not in even) or (
        even.count(0) == len(even) and 0 not in odd
    )


def detect_kind(path: Path) -> str:
    """The format of ``path``: 'alkamel_csv', 'alkamel_results', 'alkamel_weather',
    'rf2_xml', 'lmu_sharedmem_json', 'lmu_states_sqlite' or 'lmu_duckdb'.

    Raises IngestError naming the file when it is empty or no reader recognises it.
    """
    with open(path, "rb") as f:
        head = f.read(8192)
    if not head.strip():
        raise IngestError(path, "byte 0", "empty file: expected telemetry or timing data")
    if head[8:12] == b"DUCK":
        return "lmu_duckdb"
    if head.startswith(b"SQLite format 3\x00"):
        return _sqlite_kind(path)
    text = head.decode("utf-8-sig", errors="replace").lstrip()
    if text.startswith("<"):
        if "<rFactorXML" in text or "<RaceResults" in text:
            return "rf2_xml"
        raise IngestError(path, "line 1", "XML without an <rFactorXML> / <RaceResults> root")
    if text.startswith(("[", "{")):
        return "lmu_sharedmem_json"
    if _looks_utf16(head):
        raise IngestError(
            path,
            "byte 0",
            "UTF-16 text: the readers take UTF-8; convert it first, e.g. "
            f"iconv -f UTF-16 -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}",
        )
    if b"\x00" in head:
        raise IngestError(path, "byte 0", "binary file that is neither DuckDB nor SQLite telemetry")
    first = text.splitlines()[0] if text else ""
    sep = ";" if first.count(";") > first.count(",") else ","
    header = [h.strip() for h in first.split(sep)]
    kind = alkamel.header_kind(header)
    if kind is None:
        shown = ", ".join(h for h in header[:8] if h)
        raise IngestError(
            path,
            "line 1 (header)",
            f"unknown header ({shown}, ...): expected an Al Kamel lap analysis, results or weather"
            " CSV, rFactor 2 XML, shared-memory JSON, LMU DuckDB or states SQLite",
        )
    return {"laps": "alkamel_csv", "results": "alkamel_results", "weather": "alkamel_weather"}[kind]


def _sqlite_kind(path: Path) -> str:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise IngestError(path, "sqlite_master", f"unreadable SQLite file: {e}") from e
    if "races" in tables:
        return "lmu_states_sqlite"
    raise IngestError(
        path, "sqlite_master", f"SQLite file without a 'races' table (tables: {sorted(tables)})"
    )
