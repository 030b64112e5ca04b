"""``stintsim advise``: options ranked from a saved race state, with the figures ``whatif
--from-state`` gives for the same decisions and seed; the state file's readable block."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.advise import main as advise
from engine.commands.whatif import main as whatif


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("advise") / "state.json"
    argv = ["test_race", "--strategy", "fuel-reserve", "--save-state", str(path)]
    assert whatif([*argv, "--state-lap", "5", "--seed", "7"]) == 0
    return path


def test_state_file_has_a_readable_block(state: Path) -> None:
    payload = json.loads(state.read_text())
    readable = payload["readable"]
    assert readable["scenario"] == "test_race" and readable["race_time"].count(":") == 2
    assert readable["flag"] in ("green", "yellow", "fcy", "safety_car", "slow_zone")
    car = next(c for c in readable["cars"] if c["number"] == "1")
    assert car["laps"] == 5 and 0 < car["fuel"] < 1 and len(car["tread"]) == 4
    assert car["compound"] == "medium" and car["tyre_age_laps"] == 5
    assert set(car["driver_times_s"]) == {"A. One", "A. Two"}
    assert sorted(c["position"] for c in readable["cars"]) == list(
        range(1, len(readable["cars"]) + 1)
    )


def test_advice_figures_equal_whatif_from_state(state: Path, capsys) -> None:
    common = ["--replicas", "8", "--seed", "3"]
    assert advise(["test_race", str(state), "--pit-in", "2", *common, "--json"]) == 0
    advice = json.loads(capsys.readouterr().out)
    by_label = {o["label"]: o for o in advice["options"]}
    assert advice["best"] == advice["options"][0]["label"]
    keys = [
        (-o["p_class_win"], o["class_position"], o["cvar_class_position"])
        for o in advice["options"]
    ]
    assert keys == sorted(keys)
    argv = ["test_race", "--from-state", str(state), "--strategy", "fuel-reserve"]
    argv += ["--pit-after", "0", "--pit-after", "2", *common, "--json", "--no-progress"]
    assert whatif(argv) == 0
    out = json.loads(capsys.readouterr().out)
    for s in out["strategies"]:
        mine = {
            "fuel-reserve": "fuel-reserve",
            "pit now": "pit now, fill up, 4 new medium",
            "stay out 2": "stay out 2",
        }[s["label"]]
        assert by_label[mine]["p_class_win"] == s["metrics"]["class_win"]["estimate"]
        assert by_label[mine]["class_position"] == s["metrics"]["class_position"]["estimate"]
        assert (
            by_label[mine]["cvar_class_position"] == s["metrics"]["cvar_class_position"]["estimate"]
        )


def test_advise_refuses_a_state_of_another_scenario(state: Path, capsys) -> None:
    assert advise(["six_hours", str(state), "--replicas", "2"]) == 2
    assert "not 'six_hours'" in capsys.readouterr().err


def test_readme_advice_example_runs_as_written(tmp_path: Path, monkeypatch, capsys) -> None:
    import shlex

    from engine.cli import main as stintsim
    from tests.engine.test_whatif import readme_blocks

    blocks = [code for lang, code in readme_blocks("Advice during the race") if lang == "bash"]
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    for line in blocks[0].strip().splitlines():
        argv = shlex.split(line)
        assert argv[0] == "stintsim" and stintsim(argv[1:]) == 0, line
    out = capsys.readouterr().out
    # the figures the README quotes
    assert "fuel 29.7 %" in out
    assert "advice: fuel-reserve (P(class win) 0.938, mean class position 1.12" in out
    assert "pit now, fill up, keep tyres                0.938      1.12" in out
    assert "stay out 3                                  0.906      1.16" in out
    assert "pit now, fill up, 4 new medium              0.875      1.19" in out
    assert "stay out 1                                  0.219      1.88" in out
    assert "stay out 2                                  0.219      1.84" in out
