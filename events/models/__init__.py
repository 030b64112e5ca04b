"""One Pyro model per incident type; each module owns its priors (``PRIORS``) and its model.

Models are plain functions of tensors with ``pyro.plate`` over explicit dims; their sample
sites carry the names of :data:`PRIORS` entries, so the fitted posterior and the prior feed
the same sampler (:mod:`events.sampler`).
"""

from __future__ import annotations

from events.models import contacts, damage, failures, flags, neutralisations, punctures, weather
from events.priors import Prior

ALL_PRIORS: dict[str, Prior] = {
    **contacts.PRIORS,
    **damage.PRIORS,
    **punctures.PRIORS,
    **failures.PRIORS,
    **neutralisations.PRIORS,
    **weather.PRIORS,
    **flags.PRIORS,
}
"""Every parameter the sampler reads, with its prior."""
