"""stintsim: world_model layer.

``load_default()`` gives the engine its lap model: the shipped learned checkpoint
(``world_model/default_model.pt``) when it exists, else the parametric model.
``load(name_or_path)`` accepts ``"default"``, ``"parametric"`` or a checkpoint path.
"""

from world_model.loading import DEFAULT_CHECKPOINT, load, load_default

__all__ = ["DEFAULT_CHECKPOINT", "load", "load_default"]
