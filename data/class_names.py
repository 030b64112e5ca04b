"""Which engine class a session's class name is: one table, extendable by the user.

Timing data and sim logs name the same kind of car differently: Le Mans Ultimate writes
``Hyper``, ``GT3``, ``LMP2_ELMS``; IMSA writes ``GTP`` and ``GTD PRO``; WEC writes ``HYPERCAR``
and ``LMGT3``. Scenarios speak in the engine's class names (``HYPERCAR``, ``LMP2``, ``LMP3``,
``LMGT3``), so every builder maps through :func:`engine_class`. A user adds or overrides names
with a TOML file holding one ``[classes]`` table (``"My Class" = "LMGT3"``), passed as
``--class-map``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path

ENGINE_CLASSES: tuple[str, ...] = ("HYPERCAR", "LMP2", "LMP3", "LMGT3")
"""The engine's class names, fastest first."""

DEFAULT_CLASS_MAP: dict[str, str] = {
    # Top prototypes
    "HYPERCAR": "HYPERCAR",
    "HYPER": "HYPERCAR",
    "LMH": "HYPERCAR",
    "LMDH": "HYPERCAR",
    "GTP": "HYPERCAR",
    "LMP1": "HYPERCAR",
    "DPI": "HYPERCAR",
    # Prototypes
    "LMP2": "LMP2",
    "LMP2 ELMS": "LMP2",
    "LMP2 WEC": "LMP2",
    "LMP3": "LMP3",
    # GT cars
    "LMGT3": "LMGT3",
    "GT3": "LMGT3",
    "GTD": "LMGT3",
    "GTD PRO": "LMGT3",
    "GTDPRO": "LMGT3",  # IMSA timing writes the class without the space
    "LMGTE": "LMGT3",
    "LMGTE PRO": "LMGT3",
    "LMGTE AM": "LMGT3",
    "GTE": "LMGT3",
    "GTE PRO": "LMGT3",
    "GTE AM": "LMGT3",
}
"""Session class name (normalised by :func:`normalise`) -> engine class."""


class ClassMapError(ValueError):
    """A class-map file that cannot be used; the message names the file and the key."""


def normalise(name: str) -> str:
    """Upper case, with underscores and dashes read as spaces and runs of spaces collapsed."""
    return " ".join(name.replace("_", " ").replace("-", " ").upper().split())


def engine_class(name: str | None, extra: Mapping[str, str] | None = None) -> str | None:
    """The engine class of a session's class name, or None when no table entry knows it.

    ``extra`` (from :func:`load_class_map`) is looked up first, so a user can override a default.
    """
    if name is None or not name.strip():
        return None
    key = normalise(name)
    for table in (extra or {}, DEFAULT_CLASS_MAP):
        for known, engine in table.items():
            if normalise(known) == key:
                return engine
    return None


def load_class_map(path: str | Path) -> dict[str, str]:
    """Read a user's ``[classes]`` table: session class name -> one of :data:`ENGINE_CLASSES`."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise ClassMapError(f"{path}: cannot read the class map ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ClassMapError(f"{path}: not valid TOML ({exc})") from None
    table = doc.get("classes")
    if not isinstance(table, dict):
        raise ClassMapError(f"{path}: expected a [classes] table of name = engine class")
    out: dict[str, str] = {}
    for name, engine in table.items():
        if not isinstance(engine, str) or engine.upper() not in ENGINE_CLASSES:
            raise ClassMapError(
                f"{path}: classes.{name}: expected one of {', '.join(ENGINE_CLASSES)}, "
                f"got {engine!r}"
            )
        out[name] = engine.upper()
    return out
