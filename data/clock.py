"""Parsing of timing-sheet clock strings ('ss.sss', 'm:ss.sss', 'h:mm:ss.sss') into seconds."""

from __future__ import annotations


def is_digits(text: str) -> bool:
    """True for a non-empty run of ASCII digits (``str.isdigit`` also accepts '²', which
    ``int`` refuses)."""
    return text.isascii() and text.isdigit()


def parse_clock(text: str) -> float | None:
    """Seconds from '[[h:]m:]s.sss'; None for an empty field. Raises ValueError when malformed."""
    text = text.strip()
    if not text:
        return None
    parts = text.split(":")
    if len(parts) > 3:
        raise ValueError(f"not a [h:]m:ss.sss time: {text!r}")
    seconds = 0.0
    for part in parts[:-1]:
        if not is_digits(part):
            raise ValueError(f"not a [h:]m:ss.sss time: {text!r}")
        seconds = seconds * 60.0 + int(part)
    last = float(parts[-1])
    if len(parts) > 1 and not 0.0 <= last < 60.0:
        raise ValueError(f"seconds out of range in {text!r}")
    return seconds * 60.0 + last if len(parts) > 1 else last
