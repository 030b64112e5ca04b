"""What-if event scripts as text: ``sc@3h12m``, ``rain@14h-17h``, ``puncture:7@lap120``.

Grammar (case-insensitive, spaces ignored)::

    EVENT    := KIND [":" CAR] "@" WHEN ["-" END] ["x" INTENSITY]
    KIND     := sc | fcy | slow_zone (or slowzone, vsc) | rain | wet (or wetness)
              | puncture | failure | damage
    WHEN     := TIME | "lap" N
    TIME     := e.g. 3h12m, 5h, 45m, 90s, 1h2m3s, 11520 (plain seconds), 3:12:00 (h:m:s)

Race-wide events (sc, fcy, slow_zone, rain, wet) take a time and an optional end time (without
one the event model draws the duration; wet lasts to the flag). Car events (puncture, failure,
damage) name the car's race number and take a time or a lap. ``xI`` sets the rain intensity,
the track's wetness or the damage severity (0 to 1), e.g. ``rain@14h-17hx0.6`` (rain: the
track soaks and dries with the weather model's lag), ``wet@8h-9hx0.4`` (the track itself, no
lag, as a rebuilt real race scripts it) or ``damage:51@lap80x0.4``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from events.interface import ForcedEvent, ForcedKind

_KIND_ALIASES: dict[str, ForcedKind] = {
    "sc": ForcedKind.SAFETY_CAR,
    "safety_car": ForcedKind.SAFETY_CAR,
    "safetycar": ForcedKind.SAFETY_CAR,
    "fcy": ForcedKind.FCY,
    "slow_zone": ForcedKind.SLOW_ZONE,
    "slowzone": ForcedKind.SLOW_ZONE,
    "sz": ForcedKind.SLOW_ZONE,
    "vsc": ForcedKind.SLOW_ZONE,
    "rain": ForcedKind.RAIN,
    "wet": ForcedKind.WET,
    "wetness": ForcedKind.WET,
    "puncture": ForcedKind.PUNCTURE,
    "failure": ForcedKind.FAILURE,
    "damage": ForcedKind.DAMAGE,
}
CAR_KINDS = frozenset({ForcedKind.PUNCTURE, ForcedKind.FAILURE, ForcedKind.DAMAGE})
"""Kinds that happen to one car and so need its race number."""

_EVENT = re.compile(
    r"^(?P<kind>[a-z_]+)(?::(?P<car>[0-9a-z_]+))?@(?P<when>[^-x]+)"
    r"(?:-(?P<end>[^x]+))?(?:x(?P<intensity>[0-9.]+))?$"
)
_HMS = re.compile(
    r"^(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?$"
)
_CLOCK = re.compile(r"^(?P<h>\d+):(?P<m>\d{1,2})(?::(?P<s>\d{1,2}(?:\.\d+)?))?$")
_LAP = re.compile(r"^lap(?P<lap>\d+)$")


class ForcingError(ValueError):
    """A what-if event script that does not parse; the message names the text and the rule."""


def parse_duration(text: str) -> float:
    """Race time in seconds from ``3h12m``, ``45m``, ``90s``, ``1.5h``, ``3:12:00`` or ``11520``."""
    t = text.strip().lower().replace(" ", "")
    if not t:
        raise ForcingError("empty time; expected e.g. 3h12m, 45m, 90s or 3:12:00")
    try:
        value = float(t)
    except ValueError:
        pass
    else:
        if value < 0:
            raise ForcingError(f"time {text!r} is negative")
        return value
    m = _CLOCK.match(t)
    if m:
        return float(m["h"]) * 3600 + float(m["m"]) * 60 + float(m["s"] or 0)
    m = _HMS.match(t)
    if m and any(m.group(g) for g in ("h", "m", "s")):
        return float(m["h"] or 0) * 3600 + float(m["m"] or 0) * 60 + float(m["s"] or 0)
    raise ForcingError(f"cannot read time {text!r}; expected e.g. 3h12m, 45m, 90s or 3:12:00")


def format_duration(seconds: float) -> str:
    """``11520.0`` -> ``3h12m``; the inverse of :func:`parse_duration` for whole seconds."""
    total = round(seconds)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")
    return out or "0s"


def parse_event(text: str) -> ForcedEvent:
    """One :class:`~events.interface.ForcedEvent` from its script text (see the module doc)."""
    t = text.strip().lower().replace(" ", "")
    m = _EVENT.match(t)
    if not m:
        raise ForcingError(
            f"cannot read event {text!r}; expected KIND[:CAR]@WHEN[-END][xINTENSITY], "
            "e.g. sc@3h12m, rain@14h-17h, puncture:7@lap120"
        )
    kind = _KIND_ALIASES.get(m["kind"])
    if kind is None:
        raise ForcingError(
            f"unknown event kind {m['kind']!r} in {text!r}; choose from {', '.join(_KIND_ALIASES)}"
        )
    car = m["car"]
    if kind in CAR_KINDS and car is None:
        raise ForcingError(f"{kind.value} in {text!r} needs a car: {kind.value}:NUMBER@WHEN")
    if kind not in CAR_KINDS and car is not None:
        raise ForcingError(f"{kind.value} in {text!r} is race-wide and takes no car")
    intensity = 1.0
    if m["intensity"] is not None:
        try:
            intensity = float(m["intensity"])
        except ValueError:
            raise ForcingError(f"intensity in {text!r} is not a number") from None
        if not 0.0 <= intensity <= 1.0:
            raise ForcingError(f"intensity {intensity} in {text!r} must lie in [0, 1]")

    when, end = m["when"], m["end"]
    lap_match = _LAP.match(when)
    if lap_match:
        if kind not in CAR_KINDS:
            raise ForcingError(f"{kind.value} in {text!r} takes a race time, not a lap")
        if end is not None:
            raise ForcingError(f"{kind.value} in {text!r} takes no end")
        return ForcedEvent(kind=kind, car=car, lap=int(lap_match["lap"]), intensity=intensity)
    try:
        start_s = parse_duration(when)
        end_s = None if end is None else parse_duration(end)
    except ForcingError as err:
        raise ForcingError(f"in event {text!r}: {err}") from None
    if end_s is not None:
        if kind in CAR_KINDS:
            raise ForcingError(f"{kind.value} in {text!r} takes no end")
        if end_s <= start_s:
            raise ForcingError(f"end {end!r} is not after start {when!r} in {text!r}")
    return ForcedEvent(kind=kind, start_s=start_s, end_s=end_s, car=car, intensity=intensity)


def parse_events(texts: Iterable[str]) -> tuple[ForcedEvent, ...]:
    """Every script of ``texts`` as events, in order."""
    return tuple(parse_event(t) for t in texts)


def format_event(event: ForcedEvent) -> str:
    """The script text of an event (``parse_event(format_event(e)) == e`` for whole seconds)."""
    head = event.kind.value + (f":{event.car}" if event.car is not None else "")
    if event.lap is not None:
        when = f"lap{event.lap}"
    else:
        when = format_duration(event.start_s or 0.0)
        if event.end_s is not None:
            when += "-" + format_duration(event.end_s)
    tail = "" if event.intensity == 1.0 else f"x{event.intensity:g}"
    return f"{head}@{when}{tail}"
