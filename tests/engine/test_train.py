"""``python -m engine.train``: options, outputs, JSON, errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from engine.train import main, parse_budget


def test_budget_parses_steps_and_times() -> None:
    assert parse_budget("200000") == (200_000, None)
    assert parse_budget("90s") == (None, 90.0)
    assert parse_budget("6m") == (None, 360.0)
    assert parse_budget("1.5h") == (None, 5400.0)
    with pytest.raises(argparse.ArgumentTypeError, match="budget"):
        parse_budget("soon")


def test_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--scenario",
        "--algo",
        "--cvar-alpha",
        "--seed",
        "--budget",
        "--out",
        "--backend",
        "--json",
        "--resume",
        "--env-workers",
        "--teacher",
        "--teacher-generations",
    ):
        assert option in text


def test_small_run_writes_checkpoint_logs_and_one_json_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code = main(
        [
            "--scenario",
            "test_race",
            "--budget",
            "200",
            "--replicas",
            "8",
            "--eval-replicas",
            "16",
            "--tune-replicas",
            "4",
            "--out",
            str(out),
            "--json",
            "--no-progress",
        ]
    )
    assert code == 0
    stdout = capsys.readouterr().out.strip().splitlines()
    assert len(stdout) == 1
    summary = json.loads(stdout[0])
    assert summary["env_steps"] >= 200
    assert (out / "agent.pt").is_file()
    assert any((out / "tb").iterdir())
    assert json.loads((out / "summary.json").read_text())["env_steps"] == summary["env_steps"]
    labels = [s["label"] for s in summary["comparison"]["strategies"]]
    assert labels[0] == summary["tuned_plan"] and labels[1] == "ppo"
    assert summary["comparison"]["replicas"] == 16
    assert summary["comparison"]["cvar_alpha"] == 0.1  # a risk-neutral agent: the 10 % tail
    diff = summary["agent_minus_tuned_class_position"]
    assert summary["agent_beats_tuned"] == (diff["high"] is not None and diff["high"] < 0)


def test_resume_continues_the_saved_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    common = [
        "--scenario",
        "test_race",
        "--replicas",
        "8",
        "--eval-replicas",
        "0",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main([*common, "--budget", "100"]) == 0
    assert main([*common, "--budget", "250", "--resume"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] >= 250
    assert summary["generations"] >= 2


def test_training_races_split_over_two_worker_processes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--scenario", "test_race", "--replicas", "8", "--eval-replicas", "0"]
    args += ["--budget", "150", "--env-workers", "2", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] >= 150
    assert (out / "agent.pt").is_file()


def test_cvar_agent_learns_from_a_chosen_teacher_and_is_read_at_its_level(
    tmp_path: Path,
) -> None:
    from policies.checkpoint import load_checkpoint

    out = tmp_path / "run"
    args = ["--scenario", "test_race", "--algo", "iqn", "--replicas", "8", "--budget", "250"]
    args += ["--cvar-alpha", "0.25", "--teacher", "double-stint", "--teacher-generations", "1"]
    args += ["--eval-replicas", "8", "--tune-replicas", "2", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["teacher"] == "double-stint"
    assert summary["comparison"]["cvar_alpha"] == 0.25
    demos = load_checkpoint(out / "agent.pt").demos
    assert demos is not None and len(demos["act"]) > 0


def test_bad_options_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--scenario", "no_such_race", "--out", str(tmp_path)]) == 2
    assert "no_such_race" in capsys.readouterr().err
    assert main(["--algo", "ppo", "--cvar-alpha", "0.1", "--out", str(tmp_path)]) == 2
    assert "iqn" in capsys.readouterr().err
    bad_teacher = ["--scenario", "test_race", "--teacher", "no-such-plan", "--tune-replicas", "2"]
    bad_teacher += ["--teacher-generations", "1", "--out", str(tmp_path), "--no-progress"]
    assert main(bad_teacher) == 2
    assert "--teacher 'no-such-plan'" in capsys.readouterr().err
