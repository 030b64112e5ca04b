"""What a reader returns: sessions of cars, laps and events, keyed by race number, not by id.

Readers know nothing of SQLite; :mod:`data.store` turns these records into rows. Lap, pit-stop,
flag-period, incident, weather and state-sample rows are plain dicts whose keys are the lap
store's column names (see ``data/schema.sql``), plus ``car`` (the race number) and, for laps,
``driver`` (the driver's name) and, for incidents, ``other_car``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Row = dict[str, Any]


@dataclass
class CarRecord:
    """One car of a session; ``drivers`` lists (name, 1-based line-up number or None)."""

    number: str
    car_class: str | None = None
    team: str | None = None
    manufacturer: str | None = None
    vehicle: str | None = None
    fuel_capacity_l: float | None = None
    finish_status: str | None = None  # 'finished', 'retired', 'dq' or None if unknown
    laps_completed: int | None = None
    drivers: list[tuple[str, int | None]] = field(default_factory=list)

    def add_driver(self, name: str, number: int | None = None) -> None:
        """Add a driver once (names are unique within a car)."""
        if (
            name
            and (not self.drivers or self.drivers[-1][0] != name)
            and all(name != known for known, _ in self.drivers)
        ):
            self.drivers.append((name, number))


@dataclass
class SessionRecord:
    """One session: its description (columns of ``sessions``) and everything in it."""

    name: str
    series: str | None = None
    track: str | None = None
    session_type: str | None = None
    start_time_utc: str | None = None
    start_hour_of_day: float | None = None  # [h] local time of day at the start
    duration_s: float | None = None  # [s] scheduled length of a time-certain race
    laps_scheduled: int | None = None
    track_length_m: float | None = None  # [m]
    fuel_mult: float | None = None  # fuel use rate multiplier of a sim session (rF2 FuelMult)
    tyre_mult: float | None = None  # tyre wear rate multiplier of a sim session (rF2 TireMult)
    cars: dict[str, CarRecord] = field(default_factory=dict)
    laps: list[Row] = field(default_factory=list)
    pit_stops: list[Row] = field(default_factory=list)
    flag_periods: list[Row] = field(default_factory=list)
    incidents: list[Row] = field(default_factory=list)
    weather: list[Row] = field(default_factory=list)
    state_samples: list[Row] = field(default_factory=list)

    def car(self, number: str) -> CarRecord:
        """The car with this race number, created on first use."""
        if number not in self.cars:
            self.cars[number] = CarRecord(number=number)
        return self.cars[number]


@dataclass
class ReadResult:
    """Everything one file gave: the reader's name, its sessions and the warnings it raised."""

    reader: str
    sessions: list[SessionRecord]
    warnings: list[str] = field(default_factory=list)
