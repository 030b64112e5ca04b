"""Read the records of a JSON list one by one, keeping every complete record of a cut-off file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class JsonRecords:
    """The complete records of a JSON list and, if it broke off, where and why."""

    records: list[Any]
    broken_at: str | None = None  # 'line L, column C (byte B)' where parsing stopped
    problem: str | None = None


def _place(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"line {line}, column {col} (char {pos})"


def read_json_records(path: Path) -> JsonRecords:
    """Records of a JSON list (or a single JSON object, as one record).

    Decodes element by element with ``json.JSONDecoder.raw_decode``, so a file cut off in the
    middle of a record keeps every record before the cut and reports its place.
    """
    text = path.read_text(encoding="utf-8-sig", errors="strict")
    decoder = json.JSONDecoder()
    n = len(text)
    i = _skip_ws(text, 0)
    if i >= n:
        return JsonRecords([], _place(text, i), "empty file: expected a JSON list of records")
    if text[i] == "{":
        try:
            obj, _end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as e:
            return JsonRecords([], _place(text, e.pos), f"malformed JSON object: {e.msg}")
        return JsonRecords([obj])
    if text[i] != "[":
        return JsonRecords([], _place(text, i), f"expected '[' or '{{', found {text[i]!r}")
    records: list[Any] = []
    i = _skip_ws(text, i + 1)
    if i < n and text[i] == "]":
        return JsonRecords(records)
    while True:
        if i >= n:
            return JsonRecords(records, _place(text, i), "file ends before the list is closed")
        try:
            obj, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError as e:
            problem = f"record {len(records) + 1} cut off or malformed: {e.msg}"
            return JsonRecords(records, _place(text, e.pos), problem)
        records.append(obj)
        i = _skip_ws(text, i)
        if i >= n:
            return JsonRecords(records, _place(text, i), "file ends before the list is closed")
        if text[i] == "]":
            tail = _skip_ws(text, i + 1)
            if tail < n:
                return JsonRecords(records, _place(text, tail), "unexpected text after the list")
            return JsonRecords(records)
        if text[i] != ",":
            return JsonRecords(records, _place(text, i), f"expected ',' or ']', found {text[i]!r}")
        i = _skip_ws(text, i + 1)


def _skip_ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in " \t\r\n":
        i += 1
    return i
