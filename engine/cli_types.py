"""``argparse`` types shared by the commands (simulate, evaluate, whatif, tune, train).

Each raises ``argparse.ArgumentTypeError`` with what it expected, so argparse prints
``argument --seed: expected an integer >= 0, got '-1'``: the option is named, the exit
status is 2, and there is no traceback.
"""

from __future__ import annotations

import argparse
import math


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (counts of races, chunk sizes)."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (seeds, optional counts where 0 means none)."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


random_seed = non_negative_int
"""A random seed: numpy's generators take integers >= 0."""


def finite_float(text: str) -> float:
    """Any finite number (not nan or inf)."""
    return _finite(text)


def positive_float(text: str) -> float:
    """A finite number > 0 (widths, margins)."""
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def open_unit(text: str) -> float:
    """A number strictly between 0 and 1 (confidence levels)."""
    value = _finite(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def unit_level(text: str) -> float:
    """A number in (0, 1] (CVaR levels: 1 is the mean)."""
    value = _finite(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value
