"""Race control on the SimPy clock.

One ``simpy.Environment`` runs a chunk of replicas. The batched lap stepper is itself a
process that yields ``timeout(window)``; race control is a set of processes that own the
discrete events: each neutralisation (FCY, safety car, slow zone) is a process of its replica
that waits for its deployment, holds the track, and hands it back; scripted (forced)
neutralisations are announced before their window. The end of the race is not race control's:
the stepper's chequered-flag phase (:meth:`engine.stepper.ChunkSim._chequered_flag`) decides it.
SimPy orders them: the stepper resolves the window ``[a, a + window)`` at time ``a``, after
every race-control event up to ``a`` and before any inside the window, so it sees the flag
schedule of the window it advances (scripted flags are announced a window ahead; incidents
deploy flags at least a window later).

Two things are deliberately not processes of their own. Pit-lane service is a batched
first-come-first-served queue per team garage (:func:`engine.pitstop.garage_queue`) inside the
stepper: a SimPy resource request per stop per replica cost more than the whole stepper.
Weather is the event model's sampled track (:class:`engine.conditions.WeatherGrid`), read
when it is needed (at each car's line crossing; at the window's end for incidents) instead of
a process rewriting a shared state every grid step.

``log`` (when kept) is a list of ``(env.now, what)`` for tests and debugging.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import simpy
import torch

from engine.state import RaceState
from world_model.interface import FlagState


@dataclass
class FlagLog:
    """Neutralisations decided so far, as flat columns (replica is chunk-local)."""

    replica: list[int] = field(default_factory=list)
    kind: list[int] = field(default_factory=list)
    start_s: list[float] = field(default_factory=list)
    end_s: list[float] = field(default_factory=list)


class RaceControl:
    """Flags of every replica of a chunk, written into the state's schedule slots."""

    def __init__(self, env: simpy.Environment, state: RaceState, keep_log: bool = False) -> None:
        self.env = env
        self.state = state
        self.flags = FlagLog()
        self._last_period: dict[int, int] = {}
        """Replica -> index in ``flags`` of its latest period."""
        self.log: list[tuple[float, str]] | None = [] if keep_log else None
        self.on_reschedule: Callable[[torch.Tensor, bool], None] | None = None

    def _note(self, what: str) -> None:
        if self.log is not None:
            self.log.append((float(self.env.now), what))

    def deploy(
        self,
        replicas: torch.Tensor,
        kinds: torch.Tensor,
        start_s: torch.Tensor,
        end_s: torch.Tensor,
    ) -> None:
        """Schedule a neutralisation per listed replica, replacing its previous one.

        The stepper's ``on_reschedule(replicas, before)`` hook runs before the schedule
        changes (to settle every car's progress under the old one) and after (to predict
        the crossings under the new one)."""
        s = self.state
        if self.on_reschedule is not None:
            self.on_reschedule(replicas, True)
        s.neut_kind[replicas] = kinds
        s.neut_start_s[replicas] = start_s
        s.neut_end_s[replicas] = end_s
        if self.on_reschedule is not None:
            self.on_reschedule(replicas, False)
        for r, k, a, b in zip(
            replicas.tolist(), kinds.tolist(), start_s.tolist(), end_s.tolist(), strict=True
        ):
            last = self._last_period.get(r)
            if last is not None and self.flags.end_s[last] > a:  # the replaced period ends
                self.flags.end_s[last] = max(self.flags.start_s[last], a)
            self._last_period[r] = len(self.flags.replica)
            self.flags.replica.append(r)
            self.flags.kind.append(k)
            self.flags.start_s.append(a)
            self.flags.end_s.append(b)
            self.env.process(self._neutralisation(r, k, a, b))

    def _neutralisation(self, r: int, kind: int, start_s: float, end_s: float) -> Generator:
        name = FlagState(kind).name
        yield self.env.timeout(max(start_s - self.env.now, 0.0))
        self._note(f"replica {r}: {name} out")
        yield self.env.timeout(max(end_s - self.env.now, 0.0))
        # The schedule keeps the finished period: laps that spanned it still need its effect.
        self._note(f"replica {r}: {name} in")

    def forced(self, kind: FlagState, start_s: float, end_s: torch.Tensor, lead_s: float) -> None:
        """A scripted neutralisation for every replica (ends ``[R]`` [s]), announced
        ``lead_s`` before it starts."""

        def announce() -> Generator:
            yield self.env.timeout(max(start_s - lead_s - self.env.now, 0.0))
            self._note(f"scripted {kind.name} at {start_s:.0f} s")
            n = self.state.replicas
            self.deploy(
                torch.arange(n),
                torch.full((n,), int(kind)),
                torch.full((n,), start_s, dtype=torch.float64),
                end_s.double(),
            )

        self.env.process(announce())
