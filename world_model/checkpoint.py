"""Self-contained checkpoints of learned lap models, written atomically.

A checkpoint is one ``torch.save`` file holding only tensors and plain Python values (so it
loads with ``weights_only=True``): the schema version, architecture and sizes, network
weights, the fitted feature and target scalers, the feature and target names the network was
trained with, the parametric coefficients applied for unlearnable effects, and training
information (data, command, seed, scores).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from world_model.features import FEATURE_NAMES
from world_model.learned import LearnedLapModel, Standardiser
from world_model.networks import build_network
from world_model.parametric import ParametricLapParams
from world_model.targets import TARGET_NAMES

SCHEMA_VERSION = 2
"""2: fuel and energy heads are two-Gaussian scale mixtures (two more outputs each)."""
FORMAT = "stintsim-lap-model"


class CheckpointError(ValueError):
    """A file that is not a usable lap-model checkpoint; the message names the file."""


def save_checkpoint(model: LearnedLapModel, path: str | Path) -> Path:
    """Write ``model`` to ``path`` atomically (temp file in the same folder, then replace)."""
    path = Path(path)
    net = model.net
    payload: dict[str, Any] = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "arch": net.arch,
        "members": net.members,
        "hidden": net.hidden,
        "layers": net.n_layers,
        "activation": net.activation,
        "feature_names": list(FEATURE_NAMES),
        "target_names": list(TARGET_NAMES),
        "state_dict": {k: v.detach().clone() for k, v in net.state_dict().items()},
        "feature_scaler": model.features.state(),
        "target_scaler": model.targets.state(),
        "physics": _physics_state(model.physics),
        "info": model.info,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a model is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path) -> LearnedLapModel:
    """The model stored at ``path``; CheckpointError naming the file if it is not one."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: expected a {FORMAT!r} checkpoint written by world_model.fit"
        )
    version = payload.get("schema_version")
    if version != SCHEMA_VERSION:
        raise CheckpointError(
            f"{path}: schema_version {version!r}, this code reads version {SCHEMA_VERSION}"
        )
    for key, expected in (("feature_names", FEATURE_NAMES), ("target_names", TARGET_NAMES)):
        if tuple(payload[key]) != tuple(expected):
            raise CheckpointError(f"{path}: {key} differ from this code's; refit the model")
    net = build_network(
        payload["arch"],
        len(FEATURE_NAMES),
        int(payload["members"]),
        int(payload["hidden"]),
        int(payload["layers"]),
        torch.Generator().manual_seed(0),  # weights are overwritten by the state dict
        str(payload.get("activation", "silu")),
    )
    net.load_state_dict(payload["state_dict"])
    return LearnedLapModel(
        net,
        Standardiser.from_state(payload["feature_scaler"]),
        Standardiser.from_state(payload["target_scaler"]),
        ParametricLapParams(**{k: _tuple(v) for k, v in payload["physics"].items()}),
        info=payload.get("info", {}),
    )


def _physics_state(p: ParametricLapParams) -> dict[str, Any]:
    return {f.name: getattr(p, f.name) for f in dataclasses.fields(p)}


def _tuple(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v
