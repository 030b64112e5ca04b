"""What-if scripting on the real engine: forced events land where scripted, decisions from a
race state, the CLI, and the README examples run as written."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.actions import ACTION_TABLE, Fuel, Tyres, action_index
from engine.baselines import make_strategy
from engine.commands.whatif import main
from engine.forcing import ForcingError
from engine.race import RaceSim, StrategyAssignment
from engine.scenario import load_scenario
from engine.whatif import PitAfter, WhatIf, snapshot_lap
from events.interface import ForcedKind
from world_model.interface import FlagState

README = Path(__file__).resolve().parents[2] / "README.md"

# The README's examples, verbatim: the last tests run the blocks of README.md's "What-if"
# and "Compare strategies" sections once README.md carries them, and these until then.
PYTHON_EXAMPLE = """\
from engine.whatif import WhatIf

w = (
    WhatIf.load("test_race", replicas=4, seed=7)
    .change(**{"rules.min_pit_time_s": 30.0})  # a rule
    .pace("2", factor=0.995)  # car 2 half a percent quicker
    .force("sc@12m-15m", "rain@15m-25m", "puncture:1@lap8")
)
result = w.compare(["fuel-reserve", "fixed:laps=5"])
print(result.table())
print(result.difference("fixed:laps=5", "class_position"))

# From a race state: the safety car has just come out (12 minutes). Pit now, or stay out?
w.snapshot(after="12m").save("state.json")
here = w.start_from("state.json")
print(here.compare(here.decisions([0, 2])).table())
"""

CLI_EXAMPLE = """\
stintsim whatif test_race --force "sc@12m-15m" --force "rain@15m-25m" \\
    --strategy fuel-reserve --strategy fixed:laps=5 --replicas 4 --seed 7
stintsim whatif test_race --force "sc@12m-15m" --strategy fuel-reserve \\
    --save-state state.json --state-after 12m --seed 7
stintsim whatif test_race --force "sc@12m-15m" --from-state state.json \\
    --strategy fuel-reserve --pit-after 0 --pit-after 2 --replicas 4 --seed 7 --json
"""

EVALUATE_EXAMPLE = """\
stintsim evaluate test_race --strategy fuel-reserve --strategy fixed:laps=5 --replicas 8 --seed 1
stintsim evaluate test_race --strategy fuel-reserve --strategy double-stint --replicas 16 \\
    --chunk-replicas 4 --precision 0.5 --min-replicas 8 --seed 1 --csv cmp.csv \\
    --report cmp.html --report-races 2
stintsim evaluate test_race --strategy fuel-reserve --strategy fuel-reserve --replicas 8 --json
"""


def readme_blocks(title: str, text: str | None = None) -> list[tuple[str, str]]:
    """``(language, code)`` of the fenced blocks in README.md's (or ``text``'s) section whose
    heading contains ``title`` (up to the next heading of the same or a higher level)."""
    if text is None:
        if not README.is_file():
            return []
        text = README.read_text()
    blocks: list[tuple[str, str]] = []
    level = 0  # 0: outside the section
    fence: str | None = None
    code: list[str] = []
    for line in text.splitlines():
        if fence is not None:
            if line.startswith("```"):
                if level:
                    blocks.append((fence, "\n".join(code) + "\n"))
                fence, code = None, []
            else:
                code.append(line)
            continue
        if line.startswith("```"):
            fence = line[3:].strip()
            continue
        heading = re.match(r"^(#+) ", line)
        if heading:
            depth = len(heading[1])
            if level and depth <= level:
                break
            if not level and title in line:
                level = depth
    return blocks


@pytest.fixture(scope="module")
def base() -> WhatIf:
    return WhatIf.load("test_race", replicas=2, seed=11).change(**{"events.weather": False})


def test_forced_events_appear_where_scripted(base) -> None:
    w = base.force("sc@10m-14m", "rain@15m-20m", "puncture:1@lap5")
    races = w.races(["fuel-reserve"], replicas=2)["fuel-reserve"]
    window = w.scenario.race.window_s
    # the scripted safety car runs 10-14 minutes in every race (incidents may add others)
    fp = races.flag_periods
    scripted = (
        (fp["kind"] == int(FlagState.SAFETY_CAR))
        & (np.abs(fp["start_s"] - 600.0) <= window)
        & (np.abs(fp["end_s"] - 840.0) <= window)
    )
    assert sorted(fp["replica"][scripted].tolist()) == [0, 1]
    laps = races.laps
    start = laps["race_time_s"] - laps["lap_time_s"]
    # every lap that overlaps the period well inside it runs under the safety car
    inside = (laps["race_time_s"] > 600.0 + window) & (start < 840.0 - window)
    assert inside.any()
    assert np.all(laps["flag"][inside] == int(FlagState.SAFETY_CAR))
    # rain, recorded at the line: on every lap that ends well inside 15-20 minutes and on no
    # lap that ends outside it (the weather model is off: dry otherwise)
    wet = laps["rain"] > 0
    t = laps["race_time_s"]
    assert np.all(wet[(t > 900.0 + window) & (t < 1200.0 - window)])
    assert not np.any(wet[(t < 900.0 - window) | (t > 1200.0 + window)])
    assert wet.any()
    # the puncture hits car 1 during its lap 5 in every race
    inc = races.incidents
    car1 = races.car_numbers.index("1")
    punct = (inc["car"] == car1) & (inc["kind"] == "puncture")
    assert sorted(inc["replica"][punct].tolist()) == [0, 1]
    for r in (0, 1):
        lap5 = (laps["replica"] == r) & (laps["car"] == car1) & (laps["lap"] == 5)
        when = inc["race_time_s"][punct & (inc["replica"] == r)][0]
        assert start[lap5][0] - window <= when <= laps["race_time_s"][lap5][0]


def test_changes_and_bad_input(base) -> None:
    faster = base.pace("2", factor=0.99)
    assert faster.scenario.entries[1].ref_lap_time_s == pytest.approx(100.6 * 0.99)
    assert base.scenario.entries[1].ref_lap_time_s == pytest.approx(100.6)  # immutable
    assert base.change(**{"rules.min_pit_time_s": 40}).scenario.rules.min_pit_time_s == 40
    with pytest.raises(ForcingError, match="car '77' is not an entry"):
        base.force("puncture:77@lap3")
    with pytest.raises(ValueError, match="exactly one"):
        base.pace("2")
    with pytest.raises(ValueError, match="need a start state"):
        base.decisions([0])


def test_decisions_from_a_race_state(base, tmp_path) -> None:
    snap = base.snapshot(at_lap=3)
    path = tmp_path / "state.json"
    snap.save(path)
    here = base.start_from(path)
    other = dataclasses.replace(snap, scenario_name="six_hours")
    with pytest.raises(ValueError, match="of scenario 'six_hours', not 'test_race'"):
        base.start_from(other)
    assert snapshot_lap(here.start, here.scenario, "1") == 3
    at_time = base.snapshot(after="10m")
    assert 600.0 <= at_time.race_time_s < 600.0 + 2 * 120.0  # the first crossing after 10 min
    with pytest.raises(ValueError, match="exactly one"):
        base.snapshot(3, after="10m")
    now, later = here.decisions([0, 1])
    assert (now.name, later.name) == ("pit now", "stay out 1")
    # the state's crossing (lap 3) is decided already: "now" is the next one
    assert isinstance(now, PitAfter) and (now.pit_lap, later.pit_lap) == (4, 5)
    races = here.races([now, later], replicas=2)
    car1 = races["pit now"].car_numbers.index("1")
    for label, stop_lap in (("pit now", 4), ("stay out 1", 5)):
        laps = races[label].laps
        mine = laps["car"] == car1
        assert laps["lap"][mine].min() == 4  # the races go on from lap 3
        first_stop = [
            int(laps["lap"][mine & (laps["replica"] == r) & (laps["pit_in"] > 0)].min())
            for r in (0, 1)
        ]
        assert first_stop == [stop_lap, stop_lap], label
    result = here.compare([now, later])
    assert [s.label for s in result.comparison.strategies] == ["pit now", "stay out 1"]
    assert [t.get_text() for t in result.figure().axes[0].get_legend().get_texts()] == [
        "pit now",
        "stay out 1",
    ]
    captions = result.report(tmp_path / "decisions.html", races=1)
    assert "Strategy Gantt, stay out 1" in captions
    assert (tmp_path / "decisions.html").read_text().count("<img ") == len(captions)


def test_cli_json_with_forced_events(capsys) -> None:
    rc = main(
        [
            "test_race",
            "--force",
            "sc@10m",
            "--set",
            "events.weather=false",
            "--pace",
            "2=0.99",
            "--strategy",
            "fuel-reserve",
            "--strategy",
            "fixed:laps=5",
            "--replicas",
            "2",
            "--seed",
            "3",
            "--json",
            "--no-progress",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["forced"] == ["sc@10m"] and out["replicas"] == 2
    assert main(["test_race", "--force", "meteor@1h", "--strategy", "fuel-reserve"]) == 2
    assert "unknown event kind" in capsys.readouterr().err


def _run_cli_block(block: str) -> None:
    from engine.cli import main as stintsim

    for line in block.replace("\\\n", " ").strip().splitlines():
        if line.lstrip().startswith("#"):
            continue
        argv = shlex.split(line)
        assert argv[0] == "stintsim", line
        assert stintsim([*argv[1:], "--no-progress"]) == 0, line


def test_readme_sections_are_found_past_comments_in_code() -> None:
    text = (
        "# stintsim\n## What-if scripting\n```python\nx = 1\n```\n### More\n"
        "```bash\n# a comment, not a heading\nstintsim whatif a\n```\n## Ray\n```bash\nray\n```\n"
    )
    assert readme_blocks("What-if", text) == [
        ("python", "x = 1\n"),
        ("bash", "# a comment, not a heading\nstintsim whatif a\n"),
    ]
    assert readme_blocks("Nothing", text) == []


def test_readme_what_if_examples_run(tmp_path, monkeypatch, capsys) -> None:
    blocks = readme_blocks("What-if") or [("python", PYTHON_EXAMPLE), ("bash", CLI_EXAMPLE)]
    assert {lang for lang, _ in blocks} == {"python", "bash"}
    monkeypatch.chdir(tmp_path)
    for lang, code in blocks:
        if lang == "python":
            exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert "paired differences" in capsys.readouterr().out
    for lang, code in blocks:
        if lang == "bash":
            _run_cli_block(code)
    assert (tmp_path / "state.json").is_file()
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["replicas"] == 4


def test_readme_evaluate_examples_run(tmp_path, monkeypatch, capsys) -> None:
    blocks = readme_blocks("Compare strategies") or [("bash", EVALUATE_EXAMPLE)]
    monkeypatch.chdir(tmp_path)
    for lang, code in blocks:
        assert lang == "bash"
        _run_cli_block(code)
    assert (tmp_path / "cmp.csv").is_file() and (tmp_path / "cmp.html").is_file()
    twins = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert twins["differences"][0]["metrics"]["class_position"]["estimate"] == 0.0


def test_forced_kinds_reach_the_engine(base) -> None:
    assert base.force("fcy@5m").forced[0].kind is ForcedKind.FCY


def test_pit_after_follows_the_legal_mask() -> None:
    sim = RaceSim(load_scenario("test_race"), StrategyAssignment(), 2, 5, controlled_car="1")
    point = sim.advance()
    assert point is not None and bool((point.obs.lap == 1).all())
    obs, legal, gen = point.obs, point.legal.clone(), torch.Generator().manual_seed(0)
    soft = action_index(pit=True, fuel=Fuel.FULL, tyres=Tyres.FOUR_SOFT)
    stay = action_index(pit=False)
    now = PitAfter(1, "fuel-reserve", tyres=Tyres.FOUR_SOFT)
    assert bool(legal[:, soft].all())
    assert now.decide(obs, legal, gen).tolist() == [soft, soft]
    legal[:, soft] = False  # that stop is not allowed: the first legal full-tank stop instead
    fallback = now.decide(obs, legal, gen)
    assert bool(legal.gather(1, fallback[:, None]).all())
    assert bool(ACTION_TABLE.pit[fallback].all())
    assert bool((ACTION_TABLE.fuel[fallback] == int(Fuel.FULL)).all())
    later = PitAfter(4, "fuel-reserve")
    assert later.decide(obs, point.legal, gen).tolist() == [stay, stay]
    no_stay = point.legal.clone()
    no_stay[:, stay] = False  # staying out is illegal: defer to the base strategy
    base = make_strategy("fuel-reserve").decide(obs, no_stay, torch.Generator().manual_seed(0))
    assert later.decide(obs, no_stay, torch.Generator().manual_seed(0)).tolist() == base.tolist()


def test_field_strategy_replaces_every_other_cars_strategy(base, capsys) -> None:
    field = base.field_strategy("fixed:laps=3")
    focus = base.focus
    for before, after in zip(base.scenario.entries, field.scenario.entries, strict=True):
        want = before.strategy if before.number == focus else "fixed:laps=3"
        assert after.strategy == want
    with pytest.raises(ValueError, match="unknown strategy"):
        base.field_strategy("no-such-rule")
    with pytest.raises(ValueError, match=r"cannot import 'no_such\.module'"):
        base.field_strategy("no_such.module:make")
    args = ["test_race", "--car", "2", "--strategy", "fuel-reserve", "--replicas", "4"]
    args += ["--seed", "3", "--no-progress", "--json"]
    assert main([*args, "--field-strategy", "fixed:laps=2"]) == 0
    crowded = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    usual = json.loads(capsys.readouterr().out)
    # the same focus-car strategy on the same races: only the field's plans differ, and a
    # field stopping every two laps gives up time the focus car's position shows
    pos = [r["strategies"][0]["metrics"]["class_position"]["estimate"] for r in (crowded, usual)]
    assert pos[0] < pos[1]
    assert main([*args, "--field-strategy", "no-such-rule"]) == 2
    assert "unknown strategy 'no-such-rule'" in capsys.readouterr().err
