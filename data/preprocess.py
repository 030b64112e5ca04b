"""Scaling and encoding of lap arrays for training, fitted on training rows only.

A :class:`LapPreprocessor` standardises numeric columns (NaNs are ignored when fitting and
stay NaN, with the mask telling where) and one-hot encodes text columns (categories unseen in
training encode as all zeros). It is saved with whatever uses it: as bytes inside a model
checkpoint (:meth:`to_bytes` / :meth:`from_bytes`) or on its own (:meth:`save`, written to a
temporary file in the same folder and then renamed, so a reader never sees half a file).
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from data.query import LapArrays

FORMAT = "stintsim.LapPreprocessor/1"


@dataclass
class LapPreprocessor:
    """Standardise ``numeric`` columns and one-hot encode ``categorical`` ones."""

    numeric: list[str]
    categorical: list[str] = field(default_factory=list)
    scaler: StandardScaler | None = None
    encoder: OneHotEncoder | None = None
    n_train_rows: int = 0

    def fit(self, arrays: LapArrays, train_rows: np.ndarray) -> LapPreprocessor:
        """Fit on ``train_rows`` of ``arrays`` only (never on validation or test rows)."""
        train = arrays.subset(train_rows)
        if len(train) == 0:
            raise ValueError("no training rows to fit the preprocessor on")
        num = self._numeric(train)
        # A column the training rows never have is left unscaled (mean 0, scale 1).
        num[:, np.isnan(num).all(axis=0)] = 0.0
        self.scaler = StandardScaler().fit(num)
        if self.categorical:
            self.encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(
                self._categorical(train)
            )
        self.n_train_rows = len(train)
        return self

    def transform(self, arrays: LapArrays) -> tuple[np.ndarray, np.ndarray]:
        """(features float32 with missing values as 0, mask of present values) for every row.

        Features are the scaled numeric columns followed by the one-hot columns (always
        present in the mask).
        """
        if self.scaler is None:
            raise RuntimeError("LapPreprocessor used before fit()")
        num = self._numeric(arrays)
        scaled = self.scaler.transform(num)
        mask = ~np.isnan(scaled)
        parts, masks = [np.nan_to_num(scaled, nan=0.0)], [mask]
        if self.encoder is not None:
            onehot = self.encoder.transform(self._categorical(arrays))
            parts.append(onehot)
            masks.append(np.ones_like(onehot, dtype=bool))
        return np.hstack(parts).astype(np.float32), np.hstack(masks)

    def inverse_numeric(self, scaled: np.ndarray) -> np.ndarray:
        """Numeric columns back in their units (SI) from scaled values."""
        if self.scaler is None:
            raise RuntimeError("LapPreprocessor used before fit()")
        return self.scaler.inverse_transform(scaled)

    @property
    def feature_names(self) -> list[str]:
        names = list(self.numeric)
        if self.encoder is not None:
            names += list(self.encoder.get_feature_names_out(self.categorical))
        return names

    def _numeric(self, arrays: LapArrays) -> np.ndarray:
        return np.column_stack([arrays.column(c) for c in self.numeric])

    def _categorical(self, arrays: LapArrays) -> np.ndarray:
        cols = [arrays.categorical[c] for c in self.categorical]
        return np.column_stack([np.where(np.equal(c, None), "<none>", c).astype(str) for c in cols])

    # -- persistence ---------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The fitted preprocessor as bytes (joblib), to embed in a checkpoint."""
        buf = io.BytesIO()
        joblib.dump({"format": FORMAT, "preprocessor": self}, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> LapPreprocessor:
        try:
            obj = joblib.load(io.BytesIO(blob))
        except Exception as e:  # joblib / pickle raise many kinds on foreign bytes
            raise ValueError(f"not a saved LapPreprocessor: {type(e).__name__}: {e}") from e
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise ValueError(f"not a saved LapPreprocessor (expected format {FORMAT})")
        return obj["preprocessor"]

    def save(self, path: str | Path) -> None:
        """Write atomically: a temporary file in the same folder, then ``os.replace``."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(self.to_bytes())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | Path) -> LapPreprocessor:
        return cls.from_bytes(Path(path).read_bytes())
