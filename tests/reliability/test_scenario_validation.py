"""Issue 20, cases 5, 9 and 12 (scenario side): a scenario that describes no possible race is
refused with a message naming the file and the key; forced events outside the race too."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path

import pytest

from engine.commands import simulate, whatif
from engine.forcing import ForcingError
from engine.scenario import SCENARIO_DIR, ScenarioError, parse_scenario
from engine.whatif import WhatIf

WHERE = "my_race.toml"


@pytest.fixture(scope="module")
def table() -> dict:
    with (SCENARIO_DIR / "test_race.toml").open("rb") as f:
        return tomllib.load(f)


def _refused(table: dict, *path_and_value, match: str) -> str:
    broken = copy.deepcopy(table)
    *path, key, value = path_and_value
    node = broken
    for part in path:
        node = node[part]
    if value is _DELETE:
        del node[key]
    else:
        node[key] = value
    with pytest.raises(ScenarioError) as err:
        parse_scenario(broken, WHERE)
    message = str(err.value)
    assert WHERE in message and match in message, message
    return message


_DELETE = object()
INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (("race", "duration_h"), -1.0, "race.duration_h must be > 0"),
        (("race", "duration_h"), 0.0, "race.duration_h must be > 0"),
        (("race", "duration_h"), INF, "race.duration_h: expected a finite number"),
        (("race", "duration_h"), NAN, "race.duration_h: expected a finite number"),
        (("entries", 0, "ref_lap_time_s"), INF, "ref_lap_time_s: expected a finite number"),
        (("entries", 0, "ref_lap_time_s"), NAN, "ref_lap_time_s: expected a finite number"),
        (("entries", 0, "ref_fuel_per_lap"), 1.5, "ref_fuel_per_lap is a fraction of a tank"),
        (("classes", 0, "refuel_full_s"), -5.0, "refuel_full_s must be >= 0"),
        (("classes", 0, "tyre_sets"), 0, "tyre_sets must be at least 1"),
        (("rules", "max_stint_driving_s"), -1.0, "rules.max_stint_driving_s must be > 0"),
        (("rules", "max_total_driving_s"), 0.0, "rules.max_total_driving_s must be > 0"),
        (("rules", "min_total_driving_s"), -60.0, "rules.min_total_driving_s must be >= 0"),
        (("rules", "min_pit_time_s"), -1.0, "rules.min_pit_time_s must be >= 0"),
    ],
)
def test_case5_impossible_numbers_are_refused(table: dict, path, value, match) -> None:
    _refused(table, *path, value, match=match)


def test_case5_negative_and_zero_laps_are_refused(table: dict) -> None:
    lap_race = copy.deepcopy(table)
    del lap_race["race"]["duration_h"]
    for laps in (-3, 0):
        _refused(lap_race, "race", "laps", laps, match="race.laps must be > 0")


def test_case12_a_missing_class_key_is_named_as_in_the_toml(table: dict) -> None:
    message = _refused(table, "entries", 0, "class", _DELETE, match="missing key 'class'")
    assert "car_class" not in message


def test_case12_a_forced_event_with_a_text_time_names_file_and_key(table: dict) -> None:
    event = {"kind": "sc", "start_s": "abc"}
    _refused(table, "forced_events", [event], match="forced_events[0].start_s: expected a number")


@pytest.mark.parametrize(
    ("event", "match"),
    [
        ({"kind": "sc", "start_s": 99 * 3600.0}, "after the end of the race"),
        ({"kind": "puncture", "car": "1", "lap": 99}, "lap 99 is outside the race"),
        ({"kind": "sc", "start_s": 600.0, "end_s": 300.0}, "must be after start_s"),
    ],
)
def test_case9_forced_events_outside_the_race_are_refused_in_toml(table: dict, event, match):
    _refused(table, "forced_events", [event], match=match)


@pytest.mark.parametrize("event", ["sc@99h", "puncture:1@lap99"])
def test_case9_forced_events_outside_the_race_are_refused_in_whatif(
    event: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ForcingError, match=r"outside the race|after the end of the race"):
        WhatIf.load("test_race", replicas=1).force(event)
    args = ["test_race", "--strategy", "double-stint", "--force", event, "--no-progress"]
    assert whatif.main([*args, "--replicas", "2"]) == 2
    assert event in capsys.readouterr().err


def test_case9_an_event_before_a_saved_states_next_lap_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state.json"
    WhatIf.load("test_race", replicas=1, seed=1).snapshot(6).save(state)
    w = WhatIf.load("test_race", replicas=1).force("puncture:1@lap3").start_from(state)
    (message,) = w.events_in_the_past()
    assert "puncture:1@lap3" in message and "not replayed" in message
    args = ["test_race", "--strategy", "double-stint", "--force", "puncture:1@lap3"]
    args += ["--from-state", str(state), "--replicas", "2", "--no-progress", "--json"]
    assert whatif.main(args) == 0
    out = capsys.readouterr()
    assert "warning: puncture:1@lap3" in out.err and json.loads(out.out)


def test_case5_a_bad_scenario_file_exits_2_naming_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (SCENARIO_DIR / "test_race.toml").read_text()
    path = tmp_path / "bad.toml"
    path.write_text(text.replace("duration_h = 0.5", "duration_h = -0.5"))
    assert simulate.main([str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "race.duration_h" in err and "Traceback" not in err
    path.write_text(text.replace("duration_h = 0.5", "duration_h = inf"))
    assert simulate.main([str(path), "--no-progress"]) == 2
    assert "race.duration_h" in capsys.readouterr().err
