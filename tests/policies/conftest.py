"""Fixtures of the agent tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture
def global_rng():
    """Tianshou samples from the global generators: give each test a fixed state and put the
    previous one back afterwards."""
    with torch.random.fork_rng():
        state = np.random.get_state()
        torch.manual_seed(0)
        np.random.seed(0)
        yield
        np.random.set_state(state)
