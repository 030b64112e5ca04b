"""Tyre compound names to the lap store's codes (0 soft, 1 medium, 2 hard, 3 wet)."""

from __future__ import annotations

COMPOUND_CODES = {"soft": 0, "medium": 1, "hard": 2, "wet": 3, "rain": 3, "inter": 3}


def compound_code(name: str | None) -> int | None:
    """The code of a compound name ('3,Soft', 'Medium S7H', 'Wet'); None when it names none."""
    if not name:
        return None
    low = name.lower()
    # 'Supersoft' and 'Soft' are soft; test 'wet'/'inter' first so 'Intermediate' is not medium.
    for key in ("wet", "rain", "inter", "soft", "medium", "hard"):
        if key in low:
            return COMPOUND_CODES[key]
    return None
