"""Random streams of a simulated chunk, derived only from (seed, chunk index, stream name).

A chunk of replicas gets one ``torch.Generator`` per stream, so running chunks separately (on
Ray workers, after an interruption) gives the same races as one call, and so the streams do
not disturb each other: a strategy that changes which cars stop (and so how many lap draws a
window takes) leaves the weather and incident draws of every window untouched (common random
numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

STREAMS = ("weather", "incidents", "laps", "strategies", "params", "risks")
"""The independent random streams of a chunk, in the order they are spawned (a stream added at
the end leaves the others' numbers unchanged: child ``i`` of a seed sequence does not depend
on how many are spawned)."""


@dataclass(frozen=True)
class ChunkStreams:
    """The random streams of one chunk; each field one seeded ``torch.Generator``."""

    weather: torch.Generator
    """The weather track of every replica."""
    incidents: torch.Generator
    """Every window's incident draws and race control's answers."""
    laps: torch.Generator
    """The lap model's draws."""
    strategies: torch.Generator
    """The strategies' own randomness."""
    params: torch.Generator
    """Per-replica event parameters and scripted neutralisations' drawn durations."""
    risks: torch.Generator
    """The risk priors' draws (each car's fuel-use factor per stint, :mod:`engine.risks`)."""

    @staticmethod
    def derive(seed: int, chunk: int) -> ChunkStreams:
        """The streams of chunk ``chunk`` of a run seeded ``seed``."""
        root = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(chunk),))
        gens: dict[str, torch.Generator] = {}
        for child, name in zip(root.spawn(len(STREAMS)), STREAMS, strict=True):
            g = torch.Generator()
            g.manual_seed(int(child.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)))
            gens[name] = g
        return ChunkStreams(**gens)
