"""The event model the engine uses out of the box.

:func:`load_default` loads the shipped fitted posterior (``default_posterior.pt`` beside this
module, see ``MODEL_CARD.md``); where it is absent it samples the models' priors, which
encode racing knowledge (see each model's ``PRIORS`` notes). Parameters a posterior file
lacks (models with no data in the store) are drawn from their priors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from events.models import ALL_PRIORS
from events.posterior import complete_with_priors, load_posterior
from events.priors import sample_priors
from events.sampler import PosteriorEventModel

DEFAULT_POSTERIOR = Path(__file__).with_name("default_posterior.pt")
PRIOR_DRAWS = 4096
"""Prior draws when no posterior is available."""
PRIOR_SEED = 20240615
"""Seed of the generator that draws them, so the prior model is the same on every load."""


def prior_model(
    class_names: Sequence[str] | None = None, lap_length_m: float | None = None
) -> PosteriorEventModel:
    """The event model of the priors alone."""
    generator = torch.Generator().manual_seed(PRIOR_SEED)
    draws = sample_priors(ALL_PRIORS, PRIOR_DRAWS, generator)
    return PosteriorEventModel(
        draws,
        class_names=class_names,
        lap_length_m=lap_length_m,
        metadata={"source": "priors", "draws": PRIOR_DRAWS},
    )


def load_model(
    path: str | Path,
    class_names: Sequence[str] | None = None,
    lap_length_m: float | None = None,
) -> PosteriorEventModel:
    """The event model of a posterior file (as written by ``python -m events.fit``)."""
    draws, metadata = load_posterior(path)
    generator = torch.Generator().manual_seed(PRIOR_SEED)
    draws, from_priors = complete_with_priors(draws, generator)
    prior_only = sorted({*metadata.get("prior_only_parameters", []), *from_priors})
    metadata = {**metadata, "path": str(path), "prior_only_parameters": prior_only}
    return PosteriorEventModel(
        draws, class_names=class_names, lap_length_m=lap_length_m, metadata=metadata
    )


def load_default(
    class_names: Sequence[str] | None = None, lap_length_m: float | None = None
) -> PosteriorEventModel:
    """The shipped posterior when present, else the priors.

    ``class_names``: the scenario's classes in ``class_index`` order, to use each class's
    fitted failure rate; ``lap_length_m``: the track's lap (safety cars last a number of
    laps; default Le Mans). See :meth:`PosteriorEventModel.configured`.
    """
    if DEFAULT_POSTERIOR.is_file():
        return load_model(DEFAULT_POSTERIOR, class_names, lap_length_m)
    return prior_model(class_names, lap_length_m)
