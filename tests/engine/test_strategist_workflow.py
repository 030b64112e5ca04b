"""The README's strategist workflow, run as written: from the LMU race log to a printed plan in
three commands (car, scenario, plan), then the written plan raced by ``evaluate``."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from engine.cli import main as stintsim
from engine.plan_file import load_plan
from engine.scenario import load_scenario
from tests.engine.test_whatif import readme_blocks

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / ".." / "shared"
SECTION = "From an LMU session to a pit-wall plan"


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "data" / "lmu").is_dir(), reason="../shared/data/lmu is absent")
def test_readme_workflow_runs_as_written(tmp_path: Path, monkeypatch, capsys) -> None:
    blocks = [code for lang, code in readme_blocks(SECTION) if lang == "bash"]
    assert len(blocks) == 1, "the README's workflow section has one bash block"
    # The commands name ../shared/data as seen from the repository root: give the temporary
    # working folder the same neighbour.
    (tmp_path / "shared").symlink_to(SHARED.resolve())
    work = tmp_path / "repo"
    work.mkdir()
    monkeypatch.chdir(work)
    outputs = []
    for line in blocks[0].replace("\\\n", " ").strip().splitlines():
        argv = shlex.split(line)
        assert argv[0] == "stintsim", line
        assert stintsim(argv[1:]) == 0, line
        outputs.append(capsys.readouterr().out)
    car, _, plan, evaluated = outputs
    # the figures the README quotes for car 5 are the ones the command prints
    for figure in (
        "median 109.854 s",
        "3.10 % of the tank",
        "3.50 % of the allocation",
        "Medium 1.287 %",
        "29 laps, limited by energy (fuel 31, energy 29)",
    ):
        assert figure in car
    scenario = load_scenario(work / "my_race.toml")
    assert scenario.focus_car == "5" and scenario.rules.max_total_driving_s == 2700.0
    written = load_plan(work / "plan.toml")
    assert [f"{s.lap:>4}" in plan for s in written.stops] == [True] * len(written.stops)
    # the plan's table and evaluate on its file are the same races
    mean = re.search(r"mean class position ([\d.]+)", plan)
    again = re.search(r"^class position\s+([\d.]+)", evaluated, re.MULTILINE)
    assert mean and again and mean[1] == again[1]
