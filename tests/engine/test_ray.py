"""The same evaluation on a local 2-CPU Ray instance gives the same summary as in-process."""

from __future__ import annotations

import json

import pytest

from engine.evaluate import main

ray = pytest.importorskip("ray")

_TIMING = ("elapsed_s", "races_per_s", "backend", "cores")


def _run(extra: list[str], capsys) -> dict:
    argv = [
        "test_race",
        "--strategy",
        "fuel-reserve",
        "--strategy",
        "fixed:laps=4",
        "--replicas",
        "6",
        "--chunk-replicas",
        "2",
        "--seed",
        "8",
        "--json",
        "--no-progress",
    ]
    assert main(argv + extra) == 0
    out = json.loads(capsys.readouterr().out)
    return {k: v for k, v in out.items() if k not in _TIMING}


def test_ray_backend_gives_the_in_process_summary(capsys) -> None:
    local = _run([], capsys)
    remote = _run(["--backend", "ray", "--ray-cpus", "2"], capsys)
    assert remote == local
    assert local["replicas"] == 6
    assert not ray.is_initialized()  # the backend shut down the instance it started
