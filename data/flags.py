"""Track status codes: the one table of flags, as the lap store's ``laps.flag`` and
``flag_periods.kind`` columns hold them (``data/schema.sql``), with their names in summaries.

The engine, the world model and the event models use :class:`FlagState` (re-exported by
``world_model.interface``); the readers write its codes.
"""

from __future__ import annotations

from enum import IntEnum


class FlagState(IntEnum):
    """Track status, as in the lap store's ``flag`` column."""

    GREEN = 0
    LOCAL_YELLOW = 1
    FCY = 2
    SAFETY_CAR = 3
    SLOW_ZONE = 4
    CHEQUERED = 5

    @property
    def label(self) -> str:
        """The short name summaries use (``green``, ``yellow``, ``fcy``, ``sc``, ...)."""
        return FLAG_LABELS[self]


FLAG_LABELS: dict[int, str] = {
    FlagState.GREEN: "green",
    FlagState.LOCAL_YELLOW: "yellow",
    FlagState.FCY: "fcy",
    FlagState.SAFETY_CAR: "sc",
    FlagState.SLOW_ZONE: "slow_zone",
    FlagState.CHEQUERED: "chequered",
}
"""Flag code -> its short name in ingest summaries."""
