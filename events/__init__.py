"""stintsim: events layer: stochastic incidents, neutralisations and weather.

``load_default()`` gives the engine its :class:`~events.interface.EventModel`.
"""

from events.default import load_default, load_model, prior_model
from events.sampler import PosteriorEventModel

__all__ = ["PosteriorEventModel", "load_default", "load_model", "prior_model"]
