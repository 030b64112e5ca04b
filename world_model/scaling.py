"""Input and target scaling of the learned lap models: a fitted ``StandardScaler`` as tensors."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler


@dataclass(frozen=True)
class Standardiser:
    """A fitted scikit-learn ``StandardScaler`` as tensors; NaN inputs map to 0 (the mean)."""

    mean: torch.Tensor
    scale: torch.Tensor

    @classmethod
    def fit(cls, rows: np.ndarray, mute_below: int = 0) -> tuple[Standardiser, StandardScaler]:
        """Fit a StandardScaler on ``rows`` (NaN ignored); columns never observed get mean 0
        and scale 1. With ``mute_below`` (network inputs), columns observed in fewer rows get
        an infinite scale, so they standardise to 0 whatever a later row holds: the network
        learned no weight worth reading for an input so few training rows carry (virtual
        energy with the one LMU race left out; tyre temperature and wetness, 11 and 13 laps
        of two short LMU races), and a value there would pass through first-layer weights
        fitted to a handful of laps, or none."""
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            # Columns never observed (a channel no training source has) divide 0 by 0.
            warnings.simplefilter("ignore", RuntimeWarning)
            scaler = StandardScaler().fit(rows)
        mean = np.nan_to_num(scaler.mean_, nan=0.0)
        scale = np.nan_to_num(scaler.scale_, nan=1.0)
        scale = np.where(scale > 0, scale, 1.0)
        scale = np.where((~np.isnan(rows)).sum(axis=0) < mute_below, np.inf, scale)
        return cls(
            torch.tensor(mean, dtype=torch.float32), torch.tensor(scale, dtype=torch.float32)
        ), scaler

    def transform(self, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """Standardised ``x`` ``[..., F]`` (overwritten when ``inplace``); NaN maps to 0. A
        transposed (column-major) matrix, as :func:`~world_model.features.build_features`
        returns, is standardised in its own layout (contiguous rows, broadcast per row)."""
        if x.dim() == 2 and x.t().is_contiguous() and not x.is_contiguous():
            xt = x.t()
            mean, scale = self.mean.unsqueeze(1), self.scale.unsqueeze(1)
            xt = xt.sub_(mean) if inplace else xt - mean
            return torch.nan_to_num_(xt.div_(scale), nan=0.0).t()
        y = x.sub_(self.mean) if inplace else x - self.mean
        return torch.nan_to_num_(y.div_(self.scale), nan=0.0)

    def state(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean.clone(), "scale": self.scale.clone()}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> Standardiser:
        return cls(state["mean"].float(), state["scale"].float())

    def to_sklearn(self) -> StandardScaler:
        """The equivalent fitted scikit-learn scaler (for tools that expect one)."""
        s = StandardScaler()
        s.mean_ = self.mean.double().numpy()
        s.scale_ = self.scale.double().numpy()
        s.var_ = s.scale_**2
        s.n_features_in_ = int(self.mean.shape[0])
        s.n_samples_seen_ = 1
        return s
