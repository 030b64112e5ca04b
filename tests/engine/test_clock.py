"""Race control on the SimPy clock, checked on event logs of (env.now, what)."""

from __future__ import annotations

import simpy
import torch

from engine.clock import RaceControl
from engine.field import FieldTable
from engine.scenario import load_scenario
from engine.state import initial_state
from world_model.interface import FlagState


def _control() -> tuple[simpy.Environment, RaceControl]:
    s = load_scenario("test_race")
    state = initial_state(FieldTable.build(s), 2, 30.0)
    env = simpy.Environment()
    return env, RaceControl(env, state, keep_log=True)


def test_neutralisation_runs_out_and_in_at_its_times() -> None:
    env, rc = _control()
    calls: list[tuple[float, bool]] = []
    rc.on_reschedule = lambda reps, before: calls.append((env.now, before))
    rc.deploy(
        torch.tensor([1]),
        torch.tensor([int(FlagState.SAFETY_CAR)]),
        torch.tensor([100.0], dtype=torch.float64),
        torch.tensor([250.0], dtype=torch.float64),
    )
    env.run(until=400)
    assert rc.log == [(100.0, "replica 1: SAFETY_CAR out"), (250.0, "replica 1: SAFETY_CAR in")]
    assert calls == [(0.0, True), (0.0, False)]
    # The schedule keeps the period (laps that spanned it still need it) and only replica 1.
    assert int(rc.state.neut_kind[1]) == int(FlagState.SAFETY_CAR)
    assert int(rc.state.neut_kind[0]) == int(FlagState.GREEN)
    assert rc.flags.start_s == [100.0] and rc.flags.end_s == [250.0]


def test_scripted_flag_is_announced_a_window_ahead() -> None:
    env, rc = _control()
    order: list[tuple[float, str]] = []

    def stepper(window: float):  # type: ignore[no-untyped-def]
        while env.now < 100:
            order.append((env.now, f"window sees {int(rc.state.neut_kind[0])}"))
            yield env.timeout(window)

    rc.forced(FlagState.FCY, 60.0, torch.full((2,), 90.0, dtype=torch.float64), lead_s=20.0)
    env.process(stepper(20.0))
    env.run(until=120)
    assert (40.0, "scripted FCY at 60 s") in rc.log  # type: ignore[operator]
    # The window starting at 60 s (resolved at its start) already knows the FCY.
    assert (60.0, f"window sees {int(FlagState.FCY)}") in order
    assert (20.0, f"window sees {int(FlagState.GREEN)}") in order
