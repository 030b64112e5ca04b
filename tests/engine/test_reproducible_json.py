"""``evaluate --json`` (and ``whatif``, ``tune``) print the same bytes for the same seed once
the ``timing`` key, the one place for what varies between runs, is dropped."""

from __future__ import annotations

import json

import pytest

from engine.commands import evaluate, whatif
from policies import tuned


def _stripped(out: str) -> str:
    data = json.loads(out)
    timing = data.pop("timing")
    assert {"elapsed_s", "cores"} <= set(timing)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("main", "args"),
    [
        (evaluate.main, ["--strategy", "fuel-reserve", "--strategy", "fixed:laps=4"]),
        (whatif.main, ["--strategy", "fuel-reserve", "--force", "sc@10m"]),
        (tuned.main, ["--stints", "4,5", "--tyre-stints", "1", "--paces", "normal"]),
    ],
    ids=["evaluate", "whatif", "tune"],
)
def test_same_seed_same_bytes(main, args, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["test_race", *args, "--replicas", "4", "--seed", "11", "--json", "--no-progress"]
    outputs = []
    for _ in range(2):
        assert main(argv) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] != outputs[1] or "timing" in outputs[0]
    assert _stripped(outputs[0]) == _stripped(outputs[1])
    assert json.loads(outputs[0])["seed"] == 11
