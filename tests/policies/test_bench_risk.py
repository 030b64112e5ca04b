"""``python -m bench.risk`` with small settings: trains both stint-level IQN agents, then
reloads them with ``--agents`` and reproduces the same comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.risk import main


def test_trains_both_agents_and_prints_the_paired_differences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = ["--scenario", "test_race", "--replicas", "16", "--seed", "3", "--json"]
    train = ["--budget", "60", "--train-replicas", "8", "--out", str(tmp_path), "--no-progress"]
    assert main([*small, *train]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["races"] == 16 and first["cvar_alpha"] == 0.1
    for key in ("cvar_difference", "mean_difference"):
        iv = first[key]
        assert iv["low"] <= iv["estimate"] <= iv["high"]
    for name in ("neutral", "cvar"):
        assert (tmp_path / name / "agent.pt").is_file()
        shares = first["agents"][name]["stint_option_share"]
        assert sum(shares.values()) == pytest.approx(1.0)
    # Loading the saved agents races them on the same races: the same figures.
    assert main([*small, "--agents", str(tmp_path), "--no-progress"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["cvar_difference"] == first["cvar_difference"]
    assert again["mean_difference"] == first["mean_difference"]


def test_missing_agents_are_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--agents", str(tmp_path), "--json"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
