"""``stintsim advise --follow``: a shared-memory recording replayed as if live, the readable
state read from it (the real LMU recording, and a made-up three-lap one), and the agent's
choice said in words."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.sharedmem_fixture import SAMPLE_S, write_recording
from engine.advise import main as advise
from engine.recorded_state import focus_crossings, recorded_state

ROOT = Path(__file__).resolve().parents[2]
LMU = ROOT / ".." / "shared" / "data" / "lmu"
LE_MANS = LMU / "lmu_sharedmem_scoring_lemans_hypercar_20251219.json"
READABLE_KEYS = {"scenario", "race_time_s", "race_time", "time_left_s", "flag", "cars"}
CAR_KEYS = {
    "number", "class", "laps", "position", "gap_laps", "gap_s", "fuel", "energy", "tread",
    "compound", "tyre_age_laps", "driver", "driver_times_s", "stint_drive_s", "tyre_sets_left",
    "damage", "out",
}  # fmt: skip


@pytest.mark.skipif(not LE_MANS.is_file(), reason="../shared/data/lmu is absent")
def test_readable_state_of_the_real_le_mans_recording() -> None:
    state = recorded_state(LE_MANS)
    assert set(state) >= READABLE_KEYS and state["race_time"].count(":") == 2
    # the green flag at session time 132.3 s, the last record at 310.2 s
    assert state["race_time_s"] == pytest.approx(310.2 - 132.3, abs=0.2)
    assert state["flag"] == "green" and state["recording"]["field_size"] == 38
    assert state["time_left_s"] == pytest.approx(1800.0 - state["race_time_s"], abs=1.0)
    (car,) = state["cars"]  # the recording lists the player's car only
    assert set(car) == CAR_KEYS
    assert car["number"] == "83" and car["class"] == "HYPERCAR" and car["laps"] == 0
    # the README's figures: P17, 11.0 s behind the leader at the recording's end
    assert car["position"] == 17 and car["gap_laps"] == 0 and round(car["gap_s"], 1) == 11.0
    assert car["driver"] == "Pawel Zeja"
    assert car["driver_times_s"]["Pawel Zeja"] == pytest.approx(state["race_time_s"], abs=0.3)
    # scoring records carry no fuel, energy or tread: null, not guessed
    assert car["fuel"] is None and car["energy"] is None and car["tread"] is None
    # three minutes of Le Mans: no lap completed, so no crossing to advise at
    assert list(focus_crossings(LE_MANS)) == []


def test_recorded_state_reads_telemetry_and_every_crossing(tmp_path: Path) -> None:
    path = tmp_path / "rec.json"
    fuels = write_recording(path)
    moments = list(focus_crossings(path))
    assert [m.state["race_time_s"] for m in moments] == [100.0, 200.0, 300.0]
    for k, m in enumerate(moments):
        car = next(c for c in m.state["cars"] if c["number"] == "1")
        assert car["laps"] == k + 1 and car["compound"] == "medium" and car["class"] == "HYPERCAR"
        # the telemetry is that of the record before the crossing (20 s earlier)
        assert car["fuel"] == pytest.approx(fuels[k], abs=1e-4)
        assert car["tyre_age_laps"] == k + 1
        assert car["driver_times_s"] == {"A. Two": pytest.approx(100.0 * (k + 1))}
        gt3 = next(c for c in m.state["cars"] if c["number"] == "91")
        assert gt3["class"] == "LMGT3" and gt3["laps"] == k


def test_a_stop_in_the_recording_starts_a_stint_on_new_tyres(tmp_path: Path) -> None:
    path = tmp_path / "rec.json"
    fuels = write_recording(path, laps=5, stop_after=3)
    cars = [next(c for c in m.state["cars"] if c["number"] == "1") for m in focus_crossings(path)]
    assert [c["tyre_age_laps"] for c in cars] == [1, 2, 3, 1, 2]
    # the stint restarts when the car leaves the pit lane (one sample after lap 3)
    assert [c["stint_drive_s"] for c in cars] == [100.0, 200.0, 300.0, 60.0, 160.0]
    assert fuels[3] > fuels[2] and [c["fuel"] for c in cars] == pytest.approx(fuels, abs=1e-4)
    assert cars[-1]["driver_times_s"] == {"A. Two": pytest.approx(500.0 - SAMPLE_S)}


def test_follow_advises_at_every_crossing_with_the_recorded_car(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rec.json"
    write_recording(path)
    argv = ["test_race", "--follow", str(path), "--replicas", "4", "--seed", "3"]
    assert advise([*argv, "--pit-in", "2", "--json"]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(x) for x in captured.out.splitlines()]
    assert [x["lap"] for x in lines] == [1, 2, 3] and [x["crossing"] for x in lines] == [1, 2, 3]
    assert captured.err.count("crossing") == 3  # progress, one line per crossing
    for x in lines:
        taken = {"fuel", "energy_from_fuel", "tread", "compound", "tyre_age_laps", "driver"}
        assert set(x["from_recording"]) == taken
        recorded = next(c for c in x["recorded"]["cars"] if c["number"] == "1")
        engine = next(c for c in x["state"]["cars"] if c["number"] == "1")
        assert engine["laps"] == recorded["laps"]
        for key in ("fuel", "tread", "compound", "tyre_age_laps", "driver"):
            assert engine[key] == recorded[key], key
        assert len(x["options"]) == 1 + 4 + 1 and x["best"] == x["options"][0]["label"]
    # the text form: a block per crossing with the recording's line and the ranking
    assert advise([*argv, "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert text.count("== crossing") == 3 and text.count("advice:") == 3
    assert "recording at 0:01:40 (green): car 1 P1, lap 1, fuel 82.0 %" in text


def test_follow_of_a_recording_without_the_car_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rec.json"
    write_recording(path)
    assert advise(["test_race", "--follow", str(path), "--car", "3", "--replicas", "2"]) == 2
    assert "no car #3 in the recording" in capsys.readouterr().err
    assert advise(["test_race", "--replicas", "2"]) == 2
    assert "STATE.json or --follow" in capsys.readouterr().err


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.commands.whatif import main as whatif

    path = tmp_path_factory.mktemp("agent") / "state.json"
    argv = ["test_race", "--strategy", "fuel-reserve", "--save-state", str(path)]
    assert whatif([*argv, "--state-lap", "5", "--seed", "7"]) == 0
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny PPO agent (one generation of 8 races), as python -m engine.train writes it."""
    import numpy as np
    import torch

    from engine.scenario import load_scenario
    from engine.vec_env import OBS_DIM, RaceVecEnv, RewardSpec
    from policies.agents import AgentConfig, build_algorithm
    from policies.training import Budget, train

    path = tmp_path_factory.mktemp("agent") / "agent.pt"
    with torch.random.fork_rng():  # Tianshou samples from the global generators
        np_state = np.random.get_state()
        torch.manual_seed(0)
        np.random.seed(0)
        config = AgentConfig(algo="ppo", obs_dim=OBS_DIM)
        env = RaceVecEnv(load_scenario("test_race"), 8, reward=RewardSpec(gamma=config.gamma))
        algorithm = build_algorithm(config)
        train(env, algorithm, config, seed=0, budget=Budget(env_steps=100), checkpoint_path=path)
        np.random.set_state(np_state)
    return path


def test_advise_says_what_a_trained_agent_would_do(
    state: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.actions import ACTIONS
    from engine.race import RaceSim, StrategyAssignment
    from engine.whatif import WhatIf
    from policies.agents import load

    argv = ["test_race", str(state), "--replicas", "4", "--seed", "3", "--agent", str(checkpoint)]
    assert advise([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    agent = out["agent"]
    assert agent["agent"] == "ppo" and agent["lap"] == 6  # the crossing after the state's lap 5
    # the same agent asked directly at the same crossing picks the action the words say
    w = WhatIf.load("test_race", replicas=4, seed=3).start_from(state)
    sim = RaceSim(
        w.scenario,
        StrategyAssignment(default=None, per_car={}),
        1,
        3,
        controlled_car="1",
        start=w.start,
    )
    point = sim.advance()
    assert point is not None
    index = int(load(checkpoint).decide(point.obs, point.legal, torch_generator())[0])
    assert agent["action"] == str(ACTIONS[index]) and agent["pit"] == ACTIONS[index].pit
    if agent["pit"]:
        assert agent["words"].startswith(f"pit now, fill fuel to {100 * agent['fuel_to']:.0f} %")
        assert (
            agent["fuel_to"] >= next(c for c in out["state"]["cars"] if c["number"] == "1")["fuel"]
        )
    else:
        assert agent["words"].startswith("stay out") and agent["fuel_to"] is None
    assert advise(argv) == 0
    assert f"agent ppo would (at lap 6): {agent['words']}" in capsys.readouterr().out


def torch_generator():
    import torch

    return torch.Generator().manual_seed(3)


def test_a_rule_strategy_answers_in_the_same_words(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """fuel-reserve stops at lap 6 of this state (A. One has driven, fuel for under two laps):
    a full fill, four new mediums (the compound fitted) and the other driver."""
    argv = ["test_race", str(state), "--replicas", "2", "--seed", "3", "--agent", "fuel-reserve"]
    assert advise([*argv, "--json"]) == 0
    agent = json.loads(capsys.readouterr().out)["agent"]
    assert agent["words"] == (
        "pit now, fill fuel to 100 %, energy to 100 %, change tyres to medium (same compound), "
        "driver A. Two in"
    )
    assert agent["fuel_to"] == 1.0 and agent["driver_in"] == "A. Two"


def test_recorded_values_replace_the_engine_cars_and_energy_follows_a_refill() -> None:
    from engine.follow import with_recorded
    from engine.whatif import WhatIf

    w = WhatIf.load("test_race", replicas=1, seed=3)
    snap = w.snapshot(at_lap=3)
    c = w.scenario.entry_index("1")
    fuel, energy = snap.state["fuel"][0][c], snap.state["energy"][0][c]
    recorded = {"fuel": 0.96, "energy": None, "tread": [0.9] * 4, "compound": "hard"}
    recorded |= {"tyre_age_laps": 0, "driver": "A. Two"}
    new, applied = with_recorded(snap, w.scenario, "1", recorded)
    assert applied == ["fuel", "energy_from_fuel", "tread", "compound", "tyre_age_laps", "driver"]
    got = new.state
    assert got["fuel"][0][c] == 0.96 and got["tread"][0][c] == [0.9] * 4
    assert got["energy"][0][c] == pytest.approx(min(1.0, energy * 0.96 / fuel))
    assert got["compound"][0][c] == 2 and got["tyre_age"][0][c] == 0 and got["driver"][0][c] == 1
    assert snap.state["fuel"][0][c] == fuel  # the engine's snapshot itself is left as it was
    # the other cars keep the engine's values
    assert got["fuel"][0][:c] + got["fuel"][0][c + 1 :] == (
        snap.state["fuel"][0][:c] + snap.state["fuel"][0][c + 1 :]
    )


def test_readme_follow_and_agent_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import shlex

    from bench.sharedmem_fixture import main as fixture
    from engine.cli import main as stintsim
    from engine.commands.whatif import main as whatif
    from tests.engine.test_whatif import readme_blocks

    section = "Advice live from a recording"
    blocks = [code for lang, code in readme_blocks(section) if lang == "bash"]
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    # the state the section before saves
    argv = ["test_race", "--strategy", "fuel-reserve", "--save-state", "state.json"]
    assert whatif([*argv, "--state-lap", "5", "--seed", "7"]) == 0
    for line in blocks[0].strip().splitlines():
        words = shlex.split(line)
        if words[:3] == ["python", "-m", "bench.sharedmem_fixture"]:
            assert fixture(words[3:]) == 0
        else:
            assert words[0] == "stintsim" and stintsim(words[1:]) == 0, line
    out = capsys.readouterr().out
    # the figures the README quotes
    crossings = out.split("== crossing")[1:]
    assert len(crossings) == 5
    assert all("advice: fuel-reserve (P(class win) 1.000" in c for c in crossings)
    assert "pit now, fill to finish, 4 new medium        0.625" in out
    assert "car 1 P1, lap 4, fuel 96.0 %, energy 100.0 %" in out
    assert (
        "agent fuel-reserve would (at lap 6): pit now, fill fuel to 100 %, energy to 100 %, "
        "change tyres to medium (same compound), driver A. Two in"
    ) in out


@pytest.mark.skipif(not LE_MANS.is_file(), reason="../shared/data/lmu is absent")
def test_following_the_le_mans_recording_says_there_is_no_crossing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["lemans_24h", "--follow", str(LE_MANS), "--car", "83", "--replicas", "2", "--json"]
    assert advise(argv) == 0
    captured = capsys.readouterr()
    assert captured.out == ""  # no crossing, no advice
    assert "car 83 completed no lap by the recording's end at 0:02:58" in captured.err


def test_follow_ranks_as_advise_on_the_same_state_saved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The options at a followed crossing are the ones ``advise STATE.json`` ranks from that
    engine state saved to a file, with the same figures (same seed, same races)."""
    from engine.follow import follow
    from engine.readable_state import readable_state
    from engine.whatif import WhatIf

    path = tmp_path / "rec.json"
    write_recording(path, laps=2)
    argv = ["--replicas", "4", "--seed", "5", "--pit-in", "1"]
    assert advise(["test_race", "--follow", str(path), *argv, "--json", "--no-progress"]) == 0
    followed = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    w = WhatIf.load("test_race", replicas=4, seed=5)
    for point, line in zip(follow(w, str(path)), followed, strict=True):
        assert point.start is not None and point.start.start is not None
        state = tmp_path / f"state_{point.crossing}.json"
        point.start.start.save(state, readable=readable_state(point.start.start, w.scenario))
        assert advise(["test_race", str(state), *argv, "--json"]) == 0
        saved = json.loads(capsys.readouterr().out)
        assert saved["options"] == line["options"] and saved["state"] == line["state"]


def test_the_engine_race_run_on_between_crossings_equals_a_snapshot_from_the_start() -> None:
    from engine.follow import _EngineRace
    from engine.whatif import WhatIf

    w = WhatIf.load("test_race", replicas=1, seed=5)
    race = _EngineRace(w)
    for lap in (1, 2, 4, 7, 12):  # the stops of fuel-reserve fall in between
        on, fresh = race.at_lap(lap), w.snapshot(at_lap=lap)
        assert on.race_time_s == fresh.race_time_s and on.state.keys() == fresh.state.keys()
        for key, value in on.state.items():  # NaN marks unknown history: equal as NaN
            np.testing.assert_array_equal(np.array(value), np.array(fresh.state[key]), key)
    with pytest.raises(ValueError, match="did not complete lap 99"):
        race.at_lap(99)


def test_advise_races_every_tyre_choice_and_driver_change_asked_for(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["test_race", str(state), "--replicas", "2", "--seed", "3", "--pit-in", "1"]
    assert advise([*argv, "--tyres", "all", "--driver-change", "--json"]) == 0
    labels = {o["label"] for o in json.loads(capsys.readouterr().out)["options"]}
    tyres = ["keep tyres", "2 new medium", "4 new soft", "4 new medium", "4 new hard", "4 new wet"]
    expected = {
        f"pit now, {fill}, {t}{change}"
        for fill in ("fill up", "fill to finish")
        for t in tyres
        for change in ("", ", driver change")
    }
    assert labels == expected | {"fuel-reserve", "stay out 1"}
    assert advise([*argv, "--tyres", "four_hard", "--json"]) == 0
    labels = [o["label"] for o in json.loads(capsys.readouterr().out)["options"]]
    assert sorted(labels) == sorted(
        ["fuel-reserve", "stay out 1", "pit now, fill up, 4 new hard",
         "pit now, fill to finish, 4 new hard"]
    )  # fmt: skip


TELEMETRY = LMU / "lmu_sharedmem_telemetry_20251222_truncated.json"


@pytest.mark.skipif(not TELEMETRY.is_file(), reason="../shared/data/lmu is absent")
def test_readable_state_of_the_real_telemetry_recording() -> None:
    """A telemetry-only recording (cut off mid-record): the car's fuel, tread and compound as
    the game wrote them in the last complete record; no position, gap or driver."""
    state = recorded_state(TELEMETRY)
    (car,) = state["cars"]
    assert set(car) == CAR_KEYS and car["number"] == "83" and car["laps"] == 0
    assert state["flag"] == "green" and state["race_time"] == "0:01:51"
    assert car["compound"] == "soft" and car["position"] is None and car["driver"] is None
    assert car["fuel"] == pytest.approx(77.1064 / 110.0, abs=1e-4)
    assert car["tread"] == pytest.approx([0.9746, 0.9805, 0.9665, 0.9676], abs=1e-4)
    # new tyres at the first reading (99.3 % tread or more left) and no lap completed since
    assert car["tyre_age_laps"] == 0


def test_tyre_age_is_unknown_until_the_tread_shows_new_tyres(tmp_path: Path) -> None:
    def tel(t: float, lap: int, tread: float) -> dict:
        return {"Type": "TelemInfoV01", "mID": 7, "mVehicleName": "X #7:LM", "mElapsedTime": t,
                "mLapNumber": lap, "mLapStartET": 10.0, "mFuel": 50.0, "mFuelCapacity": 100.0,
                "mWheel": [{"mWear": tread}] * 4}  # fmt: skip

    path = tmp_path / "tel.json"
    treads = [(0.90, 0), (0.89, 1), (1.0, 1), (0.99, 2), (0.98, 3)]
    path.write_text(json.dumps([tel(20.0 + 10 * i, lap, w) for i, (w, lap) in enumerate(treads)]))
    ages = [m.state["cars"][0]["tyre_age_laps"] for m in focus_crossings(path)]
    assert ages == [None, 1, 2]  # worn at the first reading; new tyres fitted during lap 2
