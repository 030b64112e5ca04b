"""The posterior file: parameter draws ``[S, ...]`` of every model plus how they were made.

One ``torch.save`` of ``{"format": ..., "draws": {name: tensor}, "metadata": {...}}`` written
atomically (temp file in the same folder, then ``os.replace``), so a crash never leaves a
half-written posterior behind.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from events.models import ALL_PRIORS
from events.priors import sample_priors

FORMAT = "stintsim-events-posterior/1"


class PosteriorFileError(ValueError):
    """A posterior file that cannot be used, naming the file and what is wrong."""


def save_posterior(
    path: str | Path, draws: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]
) -> None:
    """Write the draws and metadata to ``path`` atomically."""
    path = Path(path)
    sizes = {int(v.shape[0]) for v in draws.values()}
    if len(sizes) != 1:
        raise ValueError(f"draws of unequal counts {sorted(sizes)} for {path}")
    payload = {
        "format": FORMAT,
        "draws": {k: v.detach().to(torch.float32).contiguous() for k, v in draws.items()},
        "metadata": dict(metadata),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_posterior(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(draws, metadata) of a posterior file, checked against the models' parameters."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as e:
        raise PosteriorFileError(f"{path}: not a readable posterior file ({e})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise PosteriorFileError(f"{path}: expected format {FORMAT!r}")
    draws = payload["draws"]
    sizes = {int(v.shape[0]) for v in draws.values()}
    if len(sizes) != 1:
        raise PosteriorFileError(f"{path}: draws of unequal counts {sorted(sizes)}")
    for name, value in draws.items():
        prior = ALL_PRIORS.get(name)
        if prior is not None and tuple(value.shape[1:]) != prior.shape:
            raise PosteriorFileError(
                f"{path}: parameter {name!r} has shape {tuple(value.shape[1:])} per draw, "
                f"expected {prior.shape}"
            )
    return dict(draws), dict(payload.get("metadata", {}))


def complete_with_priors(
    draws: Mapping[str, torch.Tensor], generator: torch.Generator
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The draws plus prior draws of every parameter they lack; and the names filled in."""
    n = int(next(iter(draws.values())).shape[0]) if draws else 2048
    missing = {k: p for k, p in ALL_PRIORS.items() if k not in draws}
    out = dict(draws)
    out.update(sample_priors(missing, n, generator))
    return out, sorted(missing)
