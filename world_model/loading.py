"""Name-or-path resolution of lap models, the one door the engine uses to get a LapModel."""

from __future__ import annotations

from pathlib import Path

from world_model.interface import LapModel
from world_model.parametric import ParametricLapModel

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "default_model.pt"
"""The learned checkpoint shipped with the package (see MODEL_CARD.md)."""


def load_default() -> LapModel:
    """The shipped learned model when its checkpoint exists, else :class:`ParametricLapModel`."""
    if DEFAULT_CHECKPOINT.is_file():
        return load_checkpoint_model(DEFAULT_CHECKPOINT)
    return ParametricLapModel()


def load(name_or_path: str | Path) -> LapModel:
    """A lap model by name (``"default"``, ``"parametric"``) or from a checkpoint file.

    Raises FileNotFoundError naming the path when neither a known name nor an existing file.
    """
    if isinstance(name_or_path, str) and name_or_path == "default":
        return load_default()
    if isinstance(name_or_path, str) and name_or_path == "parametric":
        return ParametricLapModel()
    path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"lap model {str(name_or_path)!r}: expected 'default', 'parametric' or the path of "
            f"a checkpoint file written by world_model.fit, and no such file exists"
        )
    return load_checkpoint_model(path)


def load_checkpoint_model(path: Path) -> LapModel:
    """The learned model stored in ``path`` (imported lazily: torch modules load on demand)."""
    from world_model.checkpoint import load_checkpoint

    return load_checkpoint(path)
