"""Class groups: how a scenario's or a session's class names map onto the fitted groups.

Mechanical reliability is fitted per *group* of classes rather than per class name, because
series name the same kind of car differently (WEC ``HYPERCAR`` and IMSA ``GTP`` are both top
prototypes) and each name alone has few retirements to learn from.
"""

from __future__ import annotations

from collections.abc import Sequence

CLASS_GROUPS: tuple[str, ...] = ("top_prototype", "prototype", "gt")
"""Fitted class groups, in the order of the group dimension of per-group parameters."""

_GROUP_OF_NAME: dict[str, str] = {
    "HYPERCAR": "top_prototype",
    "LMH": "top_prototype",
    "LMDH": "top_prototype",
    "GTP": "top_prototype",
    "LMP1": "top_prototype",
    "DPI": "top_prototype",
    "LMP2": "prototype",
    "LMP3": "prototype",
    "LMGT3": "gt",
    "LMGTE": "gt",
    "LMGTE AM": "gt",
    "LMGTE PRO": "gt",
    "GTE": "gt",
    "GTE AM": "gt",
    "GTE PRO": "gt",
    "GT3": "gt",
    "GTD": "gt",
    "GTD PRO": "gt",
    "INNOVATIVE": "prototype",
}


def class_group(name: str | None) -> int | None:
    """Index into :data:`CLASS_GROUPS` of a class name (case and spacing ignored), or None."""
    if name is None:
        return None
    key = " ".join(name.replace("_", " ").replace("-", " ").upper().split())
    group = _GROUP_OF_NAME.get(key)
    if group is None and key.startswith("LMP"):
        group = "prototype"
    if group is None and key.startswith("GT"):
        group = "gt"
    return None if group is None else CLASS_GROUPS.index(group)


def class_groups(names: Sequence[str | None]) -> list[int | None]:
    """:func:`class_group` of every name."""
    return [class_group(n) for n in names]
