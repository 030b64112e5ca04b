"""Shared test fixtures: where the real race data lives, and skipping when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the project; tests that need it skip, saying why, without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real race data not found at {SHARED_DATA} (../shared/data beside the repo)")
    return SHARED_DATA
