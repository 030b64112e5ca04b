"""The lap-time loss and repair time of every car's damage, recomputed only when it changes."""

from __future__ import annotations

import torch

from engine.state import RaceState
from events.interface import EventModel, EventParams


class DamageCache:
    """``[R, C]`` damage effects of a chunk; whoever writes ``state.damage`` calls
    :meth:`changed` (incidents add damage, a repair stop clears it)."""

    def __init__(
        self, event_model: EventModel | None, params: EventParams | None, replicas: int, cars: int
    ) -> None:
        self.event_model = event_model
        self.params = params
        self._dirty = True
        self._loss = torch.zeros(replicas, cars)
        self._repair_s = torch.zeros(replicas, cars)

    def changed(self) -> None:
        """The damage of some car changed: recompute on the next read."""
        self._dirty = True

    def effects(self, state: RaceState) -> tuple[torch.Tensor, torch.Tensor]:
        """(lap-time loss as a fraction of the green lap, repair time [s]), ``[R, C]``
        float32, 0 for undamaged cars."""
        if self._dirty:
            if self.event_model is not None and bool((state.damage > 0).any()):
                assert self.params is not None  # drawn wherever there is an event model
                loss, repair = self.event_model.damage_effects(self.params, state.damage)
                self._loss = torch.where(state.damage > 0, loss.float(), 0.0)
                self._repair_s = torch.where(state.damage > 0, repair.float(), 0.0)
            else:
                self._loss.zero_()
                self._repair_s.zero_()
            self._dirty = False
        return self._loss, self._repair_s
