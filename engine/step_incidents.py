"""Incidents in the race stepper: the event model's draws of every window, scripted car
events, and race control's neutralisations in answer (a mixin of :class:`ChunkSim`).

Draws are fixed-shape (the whole ``[R, C]`` field every window: common random numbers);
what follows works on the few rows that had an incident.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.conditions import darkness
from engine.state import F64, add, put, take
from events.interface import CarExposure, ForcedKind
from world_model.interface import FlagState

_NEUTRAL_KINDS = (int(FlagState.FCY), int(FlagState.SAFETY_CAR), int(FlagState.SLOW_ZONE))


class IncidentSteps:
    """Window incidents of a :class:`engine.stepper.ChunkSim` (uses its state and models)."""

    def _forced_car_events(self, a: float, b: float) -> dict[str, torch.Tensor] | None:
        if not self._forced_car:
            return None
        s = self.state
        damage = torch.zeros(self.R, self.C)
        puncture = torch.zeros(self.R, self.C, dtype=torch.bool)
        failure = torch.zeros(self.R, self.C, dtype=torch.bool)
        when = torch.full((self.R, self.C), float("nan"), dtype=F64)
        any_ev = False
        for ev, done in zip(self._forced_car, self._forced_done, strict=True):
            c = self.sc.entry_index(str(ev.car))
            if ev.lap is not None:
                hit = (s.lap[:, c] == ev.lap - 1) & ~done & s.running()[:, c]
                at = torch.full((self.R,), b, dtype=F64)
            else:
                start = float(ev.start_s or 0.0)
                hit = torch.full((self.R,), a <= start < b) & ~done & s.running()[:, c]
                at = torch.full((self.R,), start, dtype=F64)
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
        return {"damage": damage, "puncture": puncture, "failure": failure, "time_s": when}

    def _incidents(self, a: float, b: float) -> None:
        s, f = self.state, self.field
        running = s.running()
        drawn = None
        if self.sc.events.incidents and self.event_model is not None:
            # Time on track in the window: none before the pit exit, none once out of the race.
            # (a car out of the race has its anchor at infinity)
            track_s = (b - s.anchor_s.clamp(min=a)).clamp(0.0, b - a)
            _, wet, _ = self.weather.at(self._all_replicas, torch.full((self.R,), b, dtype=F64))
            exposure = CarExposure(
                dt_s=track_s.float(),
                race_time_s=torch.full((self.R, self.C), b),
                traffic=s.traffic,
                faster_class_traffic=s.other_class_traffic,
                pace_mode=s.pace,
                tread_min=s.tread.amin(dim=2),
                class_index=self._class_rc,
                driver_skill=f.driver_skill.view(-1)
                .index_select(0, (self._car_rc * f.max_drivers + s.driver).view(-1))
                .view(self.R, self.C),
                wetness=wet.unsqueeze(1).expand(self.R, self.C),
                night=darkness(self.sc, torch.tensor([b], dtype=F64)).expand(self.R, self.C),
                compound=s.compound,
                risks=self.risk_table.hazards,
            )
            drawn = self.event_model.car_incidents(self.params, exposure, self.gens["incidents"])
        forced = self._forced_car_events(a, b)
        if drawn is None and forced is None:
            return
        # Incidents are sparse: work on the rows that had one ([k]), not on the field.
        parts = []
        if drawn is not None:
            parts.append(
                (
                    drawn.time_s.double(),
                    drawn.damage.float(),
                    drawn.puncture.bool(),
                    drawn.failure.bool() | drawn.retired.bool(),
                    drawn.contact.bool(),
                    drawn.partner.long(),
                    drawn.off.bool(),
                )
            )
        if forced is not None:
            none = torch.zeros(self.R, self.C, dtype=torch.bool)
            alone = torch.full((self.R, self.C), -1, dtype=torch.int64)
            parts.append(
                (
                    forced["time_s"],
                    forced["damage"],
                    forced["puncture"],
                    forced["failure"],
                    none,
                    alone,
                    none,
                )
            )
        idx_parts = [(~torch.isnan(p[0])).view(-1).nonzero().squeeze(1) for p in parts]
        idx = torch.cat(idx_parts).unique() if len(parts) > 1 else idx_parts[0]
        idx = idx[take(running, idx)] if idx.numel() else idx
        severity = torch.zeros(self.R)
        first = torch.full((self.R,), float("inf"), dtype=F64)
        if idx.numel():
            when = torch.full((idx.numel(),), float("nan"), dtype=F64)
            damage = torch.zeros(idx.numel())
            puncture = torch.zeros(idx.numel(), dtype=torch.bool)
            failure = torch.zeros(idx.numel(), dtype=torch.bool)
            contact = torch.zeros(idx.numel(), dtype=torch.bool)
            other = torch.full((idx.numel(),), -1, dtype=torch.int64)
            off = torch.zeros(idx.numel(), dtype=torch.bool)
            for t_p, d_p, p_p, f_p, c_p, o_p, x_p in parts:
                t_k = take(t_p, idx)
                when = torch.where(torch.isnan(when), t_k, when)
                damage = torch.maximum(damage, take(d_p, idx))
                puncture |= take(p_p, idx)
                failure |= take(f_p, idx)
                contact |= take(c_p, idx)
                other = torch.where(other < 0, take(o_p, idx), other)
                off |= take(x_p, idx)
            when = torch.nan_to_num(when, nan=b)
            self._apply_incidents(idx, when, damage, puncture, failure, contact, other, b, off)
            rep = idx // self.C
            severity.scatter_reduce_(
                0, rep, torch.where(failure | puncture, 1.0, damage), reduce="amax"
            )
            first.scatter_reduce_(0, rep, when, reduce="amin")
        if self.sc.events.incidents and self.event_model is not None:
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
        s, rules = self.state, self.sc.rules
        # Damage stretches what is left of the current lap by the change of its time loss; a
        # puncture costs a slow crawl; both from the end of the window. Failures stop the car.
        slowed = ((damage > 0) | puncture) & ~failure
        if bool(slowed.any()):
            sel = slowed.nonzero().squeeze(1)
            rows = idx.index_select(0, sel)
            rrep = rows // self.C
            self._settle(rows, rrep, b)
            old_loss, _ = self._damage_effects()
            old_loss = take(old_loss, rows).double()
            put(s.damage, rows, (take(s.damage, rows) + damage.index_select(0, sel)).clamp(max=1.0))
            self._dmg_dirty = True
            new_loss, _ = self._damage_effects()
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
        hit = contact if off is None else contact | off
        alone = np.zeros(idx.numel(), dtype=bool) if off is None else off.numpy()
        kinds = np.where(
            failure.numpy(),
            np.where(hit.numpy(), "crash", "failure"),
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
        self.incident_parts["replica"].append((idx // self.C + self.first_replica).numpy())
        self.incident_parts["car"].append((idx % self.C).numpy())
        self.incident_parts["race_time_s"].append(when.numpy())
        self.incident_parts["kind"].append(kinds.astype(np.str_))
        self.incident_parts["damage"].append(damage.numpy())
        if other is None:
            other = torch.full((idx.numel(),), -1, dtype=torch.int64)
        self.incident_parts["other_car"].append(other.numpy())

    def _neutralise(self, severity: torch.Tensor, when: torch.Tensor, b: float) -> None:
        """Race control's answer to the window's incidents (drawn every window: fixed shape);
        ``severity`` and ``when`` (first incident, inf if none) are ``[R]``."""
        assert self.event_model is not None
        s = self.state
        neut = self.event_model.neutralisation(self.params, severity, self.gens["incidents"])
        kind = neut.kind.long()
        wanted = (severity > 0) & torch.isin(kind, torch.tensor(_NEUTRAL_KINDS))
        free = (s.neut_kind == int(FlagState.GREEN)) | (s.neut_end_s <= b)
        go = wanted & free & torch.isinf(s.chequer_s)
        if not bool(go.any()):
            return
        reps = go.nonzero().squeeze(1)
        first = when[reps]
        first = torch.where(torch.isfinite(first), first, b)
        start = torch.maximum(
            first + self.sc.rules.neutralisation_delay_s, torch.full_like(first, b)
        )
        end = start + neut.duration_s[reps].double()
        self.control.deploy(reps, kind[reps], start, end)
