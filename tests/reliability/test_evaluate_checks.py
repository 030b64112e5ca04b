"""Issue 20, case 10: evaluate checks every strategy before simulating any."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine import evaluate as evaluation
from engine.commands import evaluate as evaluate_cmd


def test_case10_a_missing_agent_checkpoint_fails_before_any_race(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[object] = []
    monkeypatch.setattr(evaluation, "ChunkJob", lambda **kw: ran.append(kw))
    missing = tmp_path / "MISSING.pt"
    spec = f"policies.agents:load:path={missing}"
    started = time.perf_counter()
    args = ["test_race", "--strategy", "double-stint", "--strategy", spec, "--no-progress"]
    assert evaluate_cmd.main([*args, "--replicas", "64"]) == 2
    err = capsys.readouterr().err
    assert not ran, "a race was set up before the bad strategy was found"
    assert spec in err and "not found" in err and "Traceback" not in err
    assert time.perf_counter() - started < 30


def test_case10_an_unknown_factory_argument_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    spec = "policies.agents:load:nosuch=1"
    args = ["test_race", "--strategy", "double-stint", "--strategy", spec, "--no-progress"]
    assert evaluate_cmd.main(args) == 2
    assert spec in capsys.readouterr().err
