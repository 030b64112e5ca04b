"""Fixtures of the events tests: a clean Pyro parameter store, and small synthetic datasets."""

from __future__ import annotations

from collections.abc import Iterator

import pyro
import pytest
import torch

from events.interface import CarExposure


@pytest.fixture
def param_store() -> Iterator[None]:
    """An empty Pyro parameter store with validation on, cleared again afterwards."""
    pyro.clear_param_store()
    with pyro.validation_enabled(True):
        yield
    pyro.clear_param_store()


def exposure(
    replicas: int = 64,
    cars: int = 30,
    *,
    dt_s: float = 30.0,
    race_time_s: float = 4 * 3600.0,
    traffic: float = 1.0,
    faster_class_traffic: float = 0.5,
    pace_mode: int = 1,
    tread_min: float = 0.6,
    wetness: float = 0.0,
    night: float = 0.0,
    classes: int = 3,
) -> CarExposure:
    """A uniform exposure ``[replicas, cars]`` (every car in the same state)."""
    shape = (replicas, cars)
    return CarExposure(
        dt_s=torch.full(shape, dt_s),
        race_time_s=torch.full(shape, race_time_s),
        traffic=torch.full(shape, traffic),
        faster_class_traffic=torch.full(shape, faster_class_traffic),
        pace_mode=torch.full(shape, pace_mode, dtype=torch.int64),
        tread_min=torch.full(shape, tread_min),
        class_index=torch.arange(cars).remainder(classes).expand(shape).contiguous(),
        driver_skill=torch.zeros(shape),
        wetness=torch.full(shape, wetness),
        night=torch.full(shape, night),
    )
