"""What-if event scripts parse into the events the engine forces, and bad scripts say why."""

from __future__ import annotations

import pytest

from engine.forcing import (
    ForcingError,
    format_event,
    parse_duration,
    parse_event,
    parse_events,
)
from events.interface import ForcedEvent, ForcedKind


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3h12m", 3 * 3600 + 12 * 60),
        ("5h", 18000.0),
        ("45m", 2700.0),
        ("90s", 90.0),
        ("1h2m3s", 3723.0),
        ("1.5h", 5400.0),
        ("3:12:00", 11520.0),
        ("0:45", 2700.0),
        ("11520", 11520.0),
    ],
)
def test_durations_in_every_written_form(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "3x", "h", "-5", "1:2:3:4", "3h-2m"])
def test_bad_durations_are_rejected(text: str) -> None:
    with pytest.raises(ForcingError):
        parse_duration(text)


def test_race_wide_and_car_events() -> None:
    assert parse_event("sc@3h12m") == ForcedEvent(ForcedKind.SAFETY_CAR, start_s=11520.0)
    assert parse_event("FCY @ 5h") == ForcedEvent(ForcedKind.FCY, start_s=18000.0)
    assert parse_event("rain@14h-17h") == ForcedEvent(
        ForcedKind.RAIN, start_s=14 * 3600.0, end_s=17 * 3600.0
    )
    assert parse_event("rain@14h-17hx0.6").intensity == pytest.approx(0.6)
    assert parse_event("wet@8h-9hx0.4") == ForcedEvent(
        ForcedKind.WET, start_s=8 * 3600.0, end_s=9 * 3600.0, intensity=0.4
    )
    assert parse_event("wetness@8h").kind == ForcedKind.WET
    assert parse_event("vsc@2h-2h10m") == ForcedEvent(
        ForcedKind.SLOW_ZONE, start_s=7200.0, end_s=7800.0
    )
    assert parse_event("puncture:7@lap120") == ForcedEvent(ForcedKind.PUNCTURE, car="7", lap=120)
    assert parse_event("failure:51@10h") == ForcedEvent(
        ForcedKind.FAILURE, car="51", start_s=36000.0
    )
    assert parse_event("damage:51@lap80x0.4") == ForcedEvent(
        ForcedKind.DAMAGE, car="51", lap=80, intensity=0.4
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("sc", "expected KIND"),
        ("meteor@3h", "unknown event kind"),
        ("puncture@lap3", "needs a car"),
        ("sc:7@3h", "race-wide"),
        ("sc@lap4", "race time, not a lap"),
        ("rain@17h-14h", "not after start"),
        ("rain@1hx1.5", "must lie in [0, 1]"),
        ("failure:7@1h-2h", "takes no end"),
        ("sc@soon", "cannot read time"),
    ],
)
def test_bad_events_name_the_text_and_the_rule(text: str, fragment: str) -> None:
    with pytest.raises(ForcingError) as err:
        parse_event(text)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    "text",
    [
        "sc@3h12m",
        "rain@14h-17h",
        "rain@1h-2hx0.5",
        "puncture:7@lap120",
        "failure:51@10h",
        "fcy@30s",
    ],
)
def test_format_is_the_inverse_of_parse(text: str) -> None:
    event = parse_event(text)
    assert format_event(event) == text
    assert parse_event(format_event(event)) == event


def test_parse_events_keeps_order() -> None:
    events = parse_events(["rain@1h-2h", "sc@30m"])
    assert [e.kind for e in events] == [ForcedKind.RAIN, ForcedKind.SAFETY_CAR]
