"""Incidents in the race stepper: the event model's draws of every window, scripted car
events, and race control's neutralisations in answer (a mixin of :class:`ChunkSim`).

Draws are fixed-shape (the whole ``[R, C]`` field every window: common random numbers);
what follows works on the few rows that had an incident.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import simpy
import torch

from engine.chunk_context import ChunkContext
from engine.clock import RaceControl
from engine.conditions import darkness
from engine.damage_cache import DamageCache
from engine.state import F64, RaceState, add, put, take
from events.interface import CarExposure, ForcedKind
from world_model.interface import FlagState

_NEUTRAL_KINDS = (int(FlagState.FCY), int(FlagState.SAFETY_CAR), int(FlagState.SLOW_ZONE))


@dataclass(frozen=True)
class CarIncidents:
    """One source's incidents of a window over the ``[R, C]`` field (drawn or scripted)."""

    time_s: torch.Tensor
    """Race time of the incident [s] (float64), NaN where none."""
    damage: torch.Tensor
    """Damage added, 0 to 1 (float32)."""
    puncture: torch.Tensor
    failure: torch.Tensor
    """The car is out of the race (a failure, or a crash)."""
    contact: torch.Tensor
    """The incident was a contact with another car."""
    partner: torch.Tensor
    """Car index of the contact's other car, -1 for none (int64)."""
    off: torch.Tensor
    """The incident was a car going off alone (slicks on a wet track)."""


class IncidentSteps:
    """Window incidents of a :class:`engine.stepper.ChunkSim` (uses its state and models)."""

    ctx: ChunkContext
    state: RaceState
    damage: DamageCache
    env: simpy.Environment
    control: RaceControl
    forced_done: list[torch.Tensor]
    incident_parts: dict[str, list[np.ndarray]]
    _settle: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | float], None]
    """(engine.step_track.TrackSteps) move flat rows (of replicas) to a race time."""
    _predict: Callable[[torch.Tensor, torch.Tensor], None]
    """(engine.step_track.TrackSteps) predict the crossing of flat rows (of replicas)."""

    def _forced_car_events(self, a: float, b: float) -> CarIncidents | None:
        """The scripted car events (puncture, failure, damage) due in the window ``[a, b)``;
        each happens once per replica."""
        ctx = self.ctx
        if not ctx.forced_car:
            return None
        s = self.state
        R, C = ctx.n_replicas, ctx.n_cars
        damage = torch.zeros(R, C)
        puncture = torch.zeros(R, C, dtype=torch.bool)
        failure = torch.zeros(R, C, dtype=torch.bool)
        when = torch.full((R, C), float("nan"), dtype=F64)
        any_ev = False
        for ev, done in zip(ctx.forced_car, self.forced_done, strict=True):
            c = ctx.scenario.entry_index(str(ev.car))
            if ev.lap is not None:
                hit = (s.lap[:, c] == ev.lap - 1) & ~done & s.running()[:, c]
                at = torch.full((R,), b, dtype=F64)
            else:
                start = float(ev.start_s or 0.0)
                hit = torch.full((R,), a <= start < b) & ~done & s.running()[:, c]
                at = torch.full((R,), start, dtype=F64)
            if not bool(hit.any()):
                continue
            any_ev = True
            done |= hit
            when[hit, c] = at[hit]
            if ev.kind == ForcedKind.PUNCTURE:
                puncture[hit, c] = True
            elif ev.kind == ForcedKind.FAILURE:
                failure[hit, c] = True
            elif ev.kind == ForcedKind.DAMAGE:
                damage[hit, c] = ev.intensity
        if not any_ev:
            return None
        return CarIncidents(
            time_s=when,
            damage=damage,
            puncture=puncture,
            failure=failure,
            contact=torch.zeros(R, C, dtype=torch.bool),
            partner=torch.full((R, C), -1, dtype=torch.int64),
            off=torch.zeros(R, C, dtype=torch.bool),
        )

    def _drawn_incidents(self, a: float, b: float) -> CarIncidents:
        """The event model's incidents of the window ``[a, b)`` for the whole field."""
        s, ctx = self.state, self.ctx
        f, R, C = ctx.field, ctx.n_replicas, ctx.n_cars
        assert ctx.event_model is not None
        # Time on track in the window: none before the pit exit, none once out of the race.
        # (a car out of the race has its anchor at infinity)
        track_s = (b - s.anchor_s.clamp(min=a)).clamp(0.0, b - a)
        _, wet, _ = ctx.weather.at(ctx.all_replicas, torch.full((R,), b, dtype=F64))
        exposure = CarExposure(
            dt_s=track_s.float(),
            race_time_s=torch.full((R, C), b),
            traffic=s.traffic,
            faster_class_traffic=s.other_class_traffic,
            pace_mode=s.pace,
            tread_min=s.tread.amin(dim=2),
            class_index=ctx.class_rc,
            driver_skill=f.driver_skill.view(-1)
            .index_select(0, (ctx.car_rc * f.max_drivers + s.driver).view(-1))
            .view(R, C),
            wetness=wet.unsqueeze(1).expand(R, C),
            night=darkness(ctx.scenario, torch.tensor([b], dtype=F64)).expand(R, C),
            compound=s.compound,
            risks=ctx.risks.hazards,
        )
        drawn = ctx.event_model.car_incidents(ctx.params, exposure, ctx.streams.incidents)
        return CarIncidents(
            time_s=drawn.time_s.double(),
            damage=drawn.damage.float(),
            puncture=drawn.puncture.bool(),
            failure=drawn.failure.bool() | drawn.retired.bool(),
            contact=drawn.contact.bool(),
            partner=drawn.partner.long(),
            off=drawn.off.bool(),
        )

    def _incidents(self, a: float, b: float) -> None:
        """The window's incidents: the event model's draws and scripted car events, their
        damage, punctures and retirements, and race control's neutralisations in answer."""
        ctx = self.ctx
        running = self.state.running()
        drawn = None
        events_on = ctx.scenario.events.incidents and ctx.event_model is not None
        if events_on:
            drawn = self._drawn_incidents(a, b)
        forced = self._forced_car_events(a, b)
        if drawn is None and forced is None:
            return
        # Incidents are sparse: work on the rows that had one ([k]), not on the field.
        parts = [p for p in (drawn, forced) if p is not None]
        idx_parts = [(~torch.isnan(p.time_s)).view(-1).nonzero().squeeze(1) for p in parts]
        idx = torch.cat(idx_parts).unique() if len(parts) > 1 else idx_parts[0]
        idx = idx[take(running, idx)] if idx.numel() else idx
        severity = torch.zeros(ctx.n_replicas)
        first = torch.full((ctx.n_replicas,), float("inf"), dtype=F64)
        if idx.numel():
            when = torch.full((idx.numel(),), float("nan"), dtype=F64)
            damage = torch.zeros(idx.numel())
            puncture = torch.zeros(idx.numel(), dtype=torch.bool)
            failure = torch.zeros(idx.numel(), dtype=torch.bool)
            contact = torch.zeros(idx.numel(), dtype=torch.bool)
            other = torch.full((idx.numel(),), -1, dtype=torch.int64)
            off = torch.zeros(idx.numel(), dtype=torch.bool)
            for p in parts:
                t_k = take(p.time_s, idx)
                when = torch.where(torch.isnan(when), t_k, when)
                damage = torch.maximum(damage, take(p.damage, idx))
                puncture |= take(p.puncture, idx)
                failure |= take(p.failure, idx)
                contact |= take(p.contact, idx)
                other = torch.where(other < 0, take(p.partner, idx), other)
                off |= take(p.off, idx)
            when = torch.nan_to_num(when, nan=b)
            self._apply_incidents(idx, when, damage, puncture, failure, contact, other, b, off)
            rep = idx // ctx.n_cars
            severity.scatter_reduce_(
                0, rep, torch.where(failure | puncture, 1.0, damage), reduce="amax"
            )
            first.scatter_reduce_(0, rep, when, reduce="amin")
        if events_on:
            self._neutralise(severity, first, b)

    def _apply_incidents(
        self,
        idx: torch.Tensor,
        when: torch.Tensor,
        damage: torch.Tensor,
        puncture: torch.Tensor,
        failure: torch.Tensor,
        contact: torch.Tensor,
        other: torch.Tensor,
        b: float,
        off: torch.Tensor | None = None,
    ) -> None:
        """Damage, punctures and failures of flat rows ``idx`` (each had an incident);
        ``other`` is the car index of a contact's partner (-1 for none); ``off``: the rows
        whose incident was a car going off alone (slicks in the wet)."""
        s, rules, C = self.state, self.ctx.scenario.rules, self.ctx.n_cars
        # Damage stretches what is left of the current lap by the change of its time loss; a
        # puncture costs a slow crawl; both from the end of the window. Failures stop the car.
        slowed = ((damage > 0) | puncture) & ~failure
        if bool(slowed.any()):
            sel = slowed.nonzero().squeeze(1)
            rows = idx.index_select(0, sel)
            rrep = rows // C
            self._settle(rows, rrep, b)
            old_loss, _ = self.damage.effects(s)
            old_loss = take(old_loss, rows).double()
            put(s.damage, rows, (take(s.damage, rows) + damage.index_select(0, sel)).clamp(max=1.0))
            self.damage.changed()
            new_loss, _ = self.damage.effects(s)
            stretch = (1.0 + take(new_loss, rows).double()) / (1.0 + old_loss)
            crawl = puncture.index_select(0, sel).double() * rules.puncture_loss_s
            before = take(s.rem_s, rows)
            after = before * stretch + crawl
            put(s.rem_s, rows, after)
            add(s.lap_total_s, rows, after - before)
            self._predict(rows, rrep)
        if bool(puncture.any()):
            rows = idx[puncture]
            tread = take(s.tread, rows)
            worst = tread.argmin(dim=1, keepdim=True)
            put(s.tread, rows, tread.scatter(1, worst, 0.0))
        if bool(failure.any()):
            rows = idx[failure]
            put(s.retired, rows, True)
            put(s.next_cross_s, rows, float("inf"))
            put(s.anchor_s, rows, float("inf"))
        # A contact or an off that ends the race is a crash; a failure without one is
        # mechanical.
        alone = np.zeros(idx.numel(), dtype=bool) if off is None else off.numpy()
        kinds = np.where(
            failure.numpy(),
            np.where(contact.numpy() | alone, "crash", "failure"),
            np.where(
                puncture.numpy(),
                "puncture",
                np.where(alone, "off", np.where(contact.numpy(), "contact", "damage")),
            ),
        )
        self._log_incidents(idx, when, kinds, damage, other)

    def _log_incidents(
        self,
        idx: torch.Tensor,
        when: torch.Tensor,
        kinds: np.ndarray,
        damage: torch.Tensor,
        other: torch.Tensor | None = None,
    ) -> None:
        """Add flat rows ``idx``'s incidents (time [s], kind text, damage, the other car's
        index or -1; None: no other car) to the race's log."""
        C = self.ctx.n_cars
        self.incident_parts["replica"].append((idx // C + self.ctx.first_replica).numpy())
        self.incident_parts["car"].append((idx % C).numpy())
        self.incident_parts["race_time_s"].append(when.numpy())
        self.incident_parts["kind"].append(kinds.astype(np.str_))
        self.incident_parts["damage"].append(damage.numpy())
        if other is None:
            other = torch.full((idx.numel(),), -1, dtype=torch.int64)
        self.incident_parts["other_car"].append(other.numpy())

    def _neutralise(self, severity: torch.Tensor, when: torch.Tensor, b: float) -> None:
        """Race control's answer to the window's incidents (drawn every window: fixed shape);
        ``severity`` and ``when`` (first incident, inf if none) are ``[R]``."""
        ctx = self.ctx
        assert ctx.event_model is not None
        s = self.state
        neut = ctx.event_model.neutralisation(ctx.params, severity, ctx.streams.incidents)
        kind = neut.kind.long()
        wanted = (severity > 0) & torch.isin(kind, torch.tensor(_NEUTRAL_KINDS))
        duration_s = neut.duration_s
        if ctx.scenario.events.full_course_cautions:
            # IMSA neutralises the whole course for what WEC answers with a local yellow too.
            wanted |= (severity > 0) & (kind == int(FlagState.LOCAL_YELLOW))
            # Drawn every window, as the kind is: the random streams keep a fixed shape.
            duration_s = ctx.event_model.neutralisation_duration(
                ctx.params, FlagState.SAFETY_CAR, ctx.streams.incidents
            )
            kind = torch.where(wanted, int(FlagState.FCY), kind)
        free = (s.neut_kind == int(FlagState.GREEN)) | (s.neut_end_s <= b)
        # A slow zone is local: an incident that calls for an FCY or a safety car ends it.
        free |= (s.neut_kind == int(FlagState.SLOW_ZONE)) & (
            (kind == int(FlagState.FCY)) | (kind == int(FlagState.SAFETY_CAR))
        )
        go = wanted & free & torch.isinf(s.chequer_s)
        if not bool(go.any()):
            return
        reps = go.nonzero().squeeze(1)
        first = when[reps]
        first = torch.where(torch.isfinite(first), first, b)
        start = torch.maximum(
            first + ctx.scenario.rules.neutralisation_delay_s, torch.full_like(first, b)
        )
        end = start + duration_s[reps].double()
        self.control.deploy(reps, kind[reps], start, end)
