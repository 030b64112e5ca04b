"""Issue 20, case 8: whatif --from-state with a malformed state file says what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.commands import whatif
from engine.whatif import WhatIf


@pytest.fixture(scope="module")
def saved_state(tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = tmp_path_factory.mktemp("state") / "state.json"
    WhatIf.load("test_race", replicas=1, seed=1).snapshot(3).save(path)
    return json.loads(path.read_text())


def _run(tmp_path: Path, payload, capsys: pytest.CaptureFixture[str]) -> str:
    path = tmp_path / "state.json"
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    args = ["test_race", "--strategy", "double-stint", "--from-state", str(path)]
    assert whatif.main([*args, "--replicas", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(path) in err
    return err


def test_case8_a_json_list_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "JSON object" in _run(tmp_path, [1, 2, 3], capsys)


def test_case8_a_state_without_lap_is_refused(
    tmp_path: Path, saved_state: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = json.loads(json.dumps(saved_state))
    del broken["state"]["lap"]
    assert "state.lap" in _run(tmp_path, broken, capsys)


@pytest.mark.parametrize(
    ("where", "value", "expected"),
    [
        ("race_time_s", "abc", "race_time_s"),
        ("race_time_s", -5, "race_time_s"),
        ("state", [], "state must be a JSON object"),
        ("fuel", [[1.0]], "state.fuel"),
        ("rem_s", None, "lacks the field(s) rem_s"),
    ],
)
def test_case8_malformed_fields_are_named(
    tmp_path: Path, saved_state: dict, capsys: pytest.CaptureFixture[str], where, value, expected
) -> None:
    broken = json.loads(json.dumps(saved_state))
    if where in ("race_time_s", "state"):
        broken[where] = value
    elif value is None:
        del broken["state"][where]
    else:
        broken["state"][where] = value
    assert expected in _run(tmp_path, broken, capsys)


def test_case8_not_json_and_missing_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "not a readable race state" in _run(tmp_path, "{not json", capsys)
    args = ["test_race", "--strategy", "double-stint", "--from-state", str(tmp_path / "nope.json")]
    assert whatif.main(args) == 2
    assert "not found" in capsys.readouterr().err


def test_case8_a_good_state_still_loads(tmp_path: Path, saved_state: dict) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(saved_state))
    w = WhatIf.load("test_race", replicas=1, seed=1).start_from(path)
    assert w.start is not None and w.start.state["lap"] == saved_state["state"]["lap"]
