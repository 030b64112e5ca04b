"""The same evaluation on a local 2-CPU Ray instance gives the same summary as in-process."""

from __future__ import annotations

import json

import pytest

from engine.actions import Tyres
from engine.backends import RayBackend
from engine.commands.evaluate import main
from engine.evaluate import evaluate
from engine.scenario import load_scenario
from engine.whatif import PitAfter

ray = pytest.importorskip("ray")

_TIMING = ("timing",)


def _cli(extra: list[str], capsys) -> dict:
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
    scenario = load_scenario("test_race")
    # a spec and a strategy object (pickled to the workers)
    strategies = ["fuel-reserve", PitAfter(3, "fuel-reserve", tyres=Tyres.KEEP, name="early")]
    local = evaluate(scenario, strategies, 4, seed=9, chunk_replicas=2)
    local_cli = _cli([], capsys)
    backend = RayBackend(num_cpus=2)
    try:
        assert backend.parallelism == 2
        remote = evaluate(scenario, strategies, 4, seed=9, chunk_replicas=2, backend=backend)
        # the command line joins the running instance rather than starting another
        remote_cli = _cli(["--backend", "ray"], capsys)
        assert ray.is_initialized()
    finally:
        backend.close()
    assert not ray.is_initialized()  # the backend shut down the instance it started
    assert remote.comparison.to_dict() == local.comparison.to_dict()
    for name in vars(local.outcomes["early"]):
        assert (
            getattr(local.outcomes["early"], name) == getattr(remote.outcomes["early"], name)
        ).all()
    assert remote_cli == local_cli and local_cli["replicas"] == 6
