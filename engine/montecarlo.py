"""Paired Monte Carlo statistics of one car's race outcomes under several strategies.

Every strategy is simulated on the same random numbers (same seed and chunks: the same
weather, incidents and lap noise per replica), so replica ``r`` of strategy B is the twin of
replica ``r`` of strategy A and their difference is a paired sample: the spread that both
share cancels, and intervals on differences are far narrower than on each strategy alone.

Intervals: Student t for means and paired mean differences, Wilson score for probabilities,
percentile bootstrap (:func:`scipy.stats.bootstrap`, with an explicit
``numpy.random.Generator``) for the CVaR and its paired difference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

if TYPE_CHECKING:
    from engine.race import RaceResult

BOOTSTRAP_BATCH_VALUES = 4_000_000
"""Values resampled at once by the bootstrap (about 32 MB of float64)."""

CVAR_ALPHA = 0.10
"""Share of worst outcomes the CVaR averages."""

MEAN_METRICS: dict[str, str] = {
    "class_position": "class position",
    "overall_position": "overall position",
    "laps": "laps completed",
    "pit_stops": "pit stops",
    "pit_time_s": "time in pits [s]",
    "finish_time_s": "finish time [s]",
}
"""Outcomes summarised by their mean (name -> label)."""

PROPORTION_METRICS: dict[str, str] = {
    "class_win": "P(class win)",
    "class_podium": "P(class podium)",
    "retired": "P(retired)",
    "retired_failure": "P(retired: failure)",
    "retired_crash": "P(retired: crash)",
    "retired_fuel": "P(retired: out of fuel)",
}
"""Yes/no outcomes summarised by their probability (name -> label)."""

CVAR_METRIC = "cvar_class_position"


def check_cvar_alpha(alpha: float) -> float:
    """``alpha`` if it is a share of races the CVaR can average (in (0, 1]), else ValueError."""
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"CVaR level must lie in (0, 1] (a share of races), got {alpha}")
    return alpha


def cvar_label(cvar_alpha: float = CVAR_ALPHA) -> str:
    """``"CVaR10% class position"``: the CVaR metric's label at its level."""
    return f"CVaR{cvar_alpha * 100:g}% class position"


def metric_labels(cvar_alpha: float = CVAR_ALPHA) -> dict[str, str]:
    """Every reported metric, in report order (name -> label), the CVaR labelled with its
    level."""
    return {**MEAN_METRICS, **PROPORTION_METRICS, CVAR_METRIC: cvar_label(cvar_alpha)}


METRIC_LABELS: dict[str, str] = metric_labels()
"""Every reported metric at the default CVaR level (name -> label)."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval (NaN bounds when undefined)."""

    estimate: float
    low: float
    high: float
    clipped: bool = False
    """The approximate interval reached past what is possible (a class position below 1, a
    probability difference beyond +-1: too few races for it) and was cut to the possible
    range; read it as "the sample is too small" rather than as a calibrated interval."""

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def within(self, lowest: float, highest: float) -> Interval:
        """This interval cut to ``[lowest, highest]``, marked ``clipped`` when it had to be."""
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return self
        low, high = max(self.low, lowest), min(self.high, highest)
        if low == self.low and high == self.high:
            return self
        return Interval(self.estimate, low, high, clipped=True)

    def to_dict(self) -> dict[str, float | bool | None]:
        out: dict[str, float | bool | None] = {
            k: _finite_or_none(getattr(self, k)) for k in ("estimate", "low", "high")
        }
        if self.clipped:
            out["clipped"] = True
        return out


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


RETIRE_CAUSES: dict[str, int] = {"failure": 1, "crash": 2, "out_of_fuel": 3}
"""Incident kinds that end a car's race (``RaceResult.incidents``) -> cause code."""
_CAUSE_OF_METRIC = {
    "retired_failure": RETIRE_CAUSES["failure"],
    "retired_crash": RETIRE_CAUSES["crash"],
    "retired_fuel": RETIRE_CAUSES["out_of_fuel"],
}


def retire_causes(result: RaceResult, car_index: int) -> np.ndarray:
    """``[R]`` cause code of the car's retirement in each race, from the incident log."""
    cause = np.zeros(result.replicas, dtype=np.int8)
    inc = result.incidents
    mine = inc["car"] == car_index
    for kind, code in RETIRE_CAUSES.items():
        rows = inc["replica"][mine & (inc["kind"] == kind)] - result.first_replica
        cause[rows] = code
    return cause


@dataclass(frozen=True)
class Outcomes:
    """Per-replica outcomes of one car under one strategy; every field is ``[R]``."""

    class_position: np.ndarray
    overall_position: np.ndarray
    laps: np.ndarray
    pit_stops: np.ndarray
    pit_time_s: np.ndarray
    finish_time_s: np.ndarray
    retired: np.ndarray
    retire_cause: np.ndarray
    """Why the car retired (:data:`RETIRE_CAUSES` code; 0 when it did not, or was stranded
    by a stop longer than the race)."""
    class_size: np.ndarray | None = None
    """Cars in the car's class in each race (the worst class position); None: unknown."""
    field_size: np.ndarray | None = None
    """Cars in each race (the worst overall position); None: unknown."""

    @classmethod
    def from_result(cls, result: RaceResult, car: str) -> Outcomes:
        """The outcomes of race number ``car`` in a simulated batch of races."""
        if car not in result.car_numbers:
            raise KeyError(
                f"car {car!r} is not in the race (cars: {', '.join(result.car_numbers)})"
            )
        c = result.car_numbers.index(car)
        return cls(
            class_position=np.asarray(result.class_position[:, c], dtype=np.int64),
            overall_position=np.asarray(result.finish_position[:, c], dtype=np.int64),
            laps=np.asarray(result.laps_completed[:, c], dtype=np.int64),
            pit_stops=np.asarray(result.pit_stops[:, c], dtype=np.int64),
            pit_time_s=np.asarray(result.pit_time_s[:, c], dtype=np.float64),
            finish_time_s=np.asarray(result.finish_time_s[:, c], dtype=np.float64),
            retired=np.asarray(result.retired[:, c], dtype=bool),
            retire_cause=retire_causes(result, c),
            class_size=np.full(result.replicas, result.car_classes.count(result.car_classes[c])),
            field_size=np.full(result.replicas, len(result.car_numbers)),
        )

    @classmethod
    def concat(cls, parts: Sequence[Outcomes]) -> Outcomes:
        """Outcomes of consecutive chunks joined in replica order."""
        names = list(vars(parts[0]))
        return cls(
            **{
                n: None
                if any(getattr(p, n) is None for p in parts)
                else np.concatenate([getattr(p, n) for p in parts])
                for n in names
            }
        )

    def bounds(self, metric: str) -> tuple[float, float]:
        """The lowest and highest value ``metric``'s mean can take for this car."""
        if metric == "class_position":
            worst = self.class_size
        elif metric == "overall_position":
            worst = self.field_size
        elif metric in PROPORTION_METRICS:
            return 0.0, 1.0
        else:
            return 0.0, math.inf  # laps, stops, times: never negative
        return 1.0, math.inf if worst is None or not len(worst) else float(worst.max())

    def __len__(self) -> int:
        return int(self.class_position.shape[0])

    def values(self, metric: str) -> np.ndarray:
        """Per-replica values of a mean or proportion metric, as float64."""
        if metric == "class_win":
            return (self.class_position == 1).astype(np.float64)
        if metric == "class_podium":
            return (self.class_position <= 3).astype(np.float64)
        if metric in _CAUSE_OF_METRIC:
            return (self.retire_cause == _CAUSE_OF_METRIC[metric]).astype(np.float64)
        return np.asarray(getattr(self, metric), dtype=np.float64)


def mean_interval(x: np.ndarray, confidence: float = 0.95) -> Interval:
    """Student t interval on the mean of ``x``; zero width when every value is equal."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    mean = float(x.mean()) if n else math.nan
    if n < 2:
        return Interval(mean, math.nan, math.nan)
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half)


def proportion_interval(hits: np.ndarray, confidence: float = 0.95) -> Interval:
    """Wilson score interval on the probability that ``hits`` (0/1 per replica) is 1."""
    hits = np.asarray(hits)
    n = int(hits.shape[0])
    if n == 0:
        return Interval(math.nan, math.nan, math.nan)
    k = int(np.count_nonzero(hits))
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(k / n, float(ci.low), float(ci.high))


def cvar(x: np.ndarray, alpha: float = CVAR_ALPHA, axis: int = -1) -> np.ndarray | float:
    """Mean of the worst (largest) ``alpha`` share of ``x`` along ``axis``.

    The boundary sample counts with its fractional weight, so the estimate is the
    conditional value at risk of the empirical distribution for any sample size.
    """
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    n = x.shape[-1]
    k = alpha * n
    full = math.floor(k)
    # a partial sort puts the (full+1)-th largest at index ``full`` and the larger ones
    # before it (in any order): linear time instead of a full sort
    worst_first = -np.partition(-x, full, axis=-1) if full < n else x
    total = worst_first[..., :full].sum(axis=-1)
    if full < n:
        total = total + (k - full) * worst_first[..., full]
    out = total / k
    return float(out) if np.ndim(out) == 0 else out


def _bootstrap(
    data: tuple[np.ndarray, ...],
    statistic,
    estimate: float,
    rng: np.random.Generator,
    confidence: float,
    n_resamples: int,
    paired: bool = False,
) -> Interval:
    """Percentile bootstrap interval; zero width on constant data, undefined below 2 samples."""
    if data[0].shape[0] < 2:
        return Interval(estimate, math.nan, math.nan)
    if all(np.all(d == d[0]) for d in data) or (
        paired and len(data) == 2 and np.array_equal(data[0], data[1])
    ):
        # No spread to resample (or a strategy against its own twin): the statistic is exact.
        return Interval(estimate, estimate, estimate)
    res = stats.bootstrap(
        data,
        statistic,
        n_resamples=n_resamples,
        # resample in batches of about BOOTSTRAP_BATCH_VALUES values (memory stays flat
        # for large replica counts)
        batch=max(1, BOOTSTRAP_BATCH_VALUES // data[0].shape[0]),
        vectorized=True,
        paired=paired,
        confidence_level=confidence,
        method="percentile",
        rng=rng,
    )
    return Interval(
        estimate, float(res.confidence_interval.low), float(res.confidence_interval.high)
    )


def cvar_interval(
    x: np.ndarray,
    rng: np.random.Generator,
    alpha: float = CVAR_ALPHA,
    confidence: float = 0.95,
    n_resamples: int = 2000,
) -> Interval:
    """CVaR of ``x`` with a percentile-bootstrap interval."""
    x = np.asarray(x, dtype=np.float64)
    return _bootstrap(
        (x,),
        lambda s, axis: cvar(s, alpha, axis),
        float(cvar(x, alpha)),
        rng,
        confidence,
        n_resamples,
    )


def paired_cvar_difference(
    a: np.ndarray,
    b: np.ndarray,
    rng: np.random.Generator,
    alpha: float = CVAR_ALPHA,
    confidence: float = 0.95,
    n_resamples: int = 2000,
) -> Interval:
    """CVaR(b) - CVaR(a) with a paired bootstrap interval (replicas resampled together)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return _bootstrap(
        (a, b),
        lambda sa, sb, axis: cvar(sb, alpha, axis) - cvar(sa, alpha, axis),
        float(cvar(b, alpha)) - float(cvar(a, alpha)),
        rng,
        confidence,
        n_resamples,
        paired=True,
    )


def _counts(x: np.ndarray) -> dict[int, int]:
    values, counts = np.unique(x, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


@dataclass(frozen=True)
class StrategySummary:
    """One strategy's outcome statistics for the evaluated car."""

    label: str
    spec: str
    replicas: int
    metrics: dict[str, Interval]
    """Metric name (see :data:`METRIC_LABELS`) -> estimate with interval."""
    class_position_counts: dict[int, int]
    overall_position_counts: dict[int, int]

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "spec": self.spec,
            "replicas": self.replicas,
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
            "class_position_counts": {str(k): v for k, v in self.class_position_counts.items()},
            "overall_position_counts": {str(k): v for k, v in self.overall_position_counts.items()},
        }


@dataclass(frozen=True)
class PairedDifference:
    """``candidate - baseline`` per metric on common random numbers."""

    baseline: str
    candidate: str
    replicas: int
    metrics: dict[str, Interval]

    @property
    def label(self) -> str:
        return f"{self.candidate} - {self.baseline}"

    def to_dict(self) -> dict:
        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "replicas": self.replicas,
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
        }


def summarise(
    label: str,
    spec: str,
    outcomes: Outcomes,
    rng: np.random.Generator,
    confidence: float = 0.95,
    alpha: float = CVAR_ALPHA,
    n_resamples: int = 2000,
) -> StrategySummary:
    """Estimates and intervals of every metric of one strategy."""
    metrics: dict[str, Interval] = {}
    for name in MEAN_METRICS:
        interval = mean_interval(outcomes.values(name), confidence)
        metrics[name] = interval.within(*outcomes.bounds(name))
    for name in PROPORTION_METRICS:
        metrics[name] = proportion_interval(outcomes.values(name), confidence)
    metrics[CVAR_METRIC] = cvar_interval(
        outcomes.class_position, rng, alpha, confidence, n_resamples
    )
    return StrategySummary(
        label=label,
        spec=spec,
        replicas=len(outcomes),
        metrics=metrics,
        class_position_counts=_counts(outcomes.class_position),
        overall_position_counts=_counts(outcomes.overall_position),
    )


def difference_bounds(metric: str, a: Outcomes, b: Outcomes) -> tuple[float, float]:
    """The possible range of ``mean(b) - mean(a)`` for ``metric`` (infinite where unbounded,
    as for lap counts)."""
    low_a, high_a = a.bounds(metric)
    low_b, high_b = b.bounds(metric)
    if metric in ("laps", "pit_stops", "pit_time_s", "finish_time_s"):
        return -math.inf, math.inf
    return low_b - high_a, high_b - low_a


def paired_difference(
    baseline: str,
    a: Outcomes,
    candidate: str,
    b: Outcomes,
    rng: np.random.Generator,
    confidence: float = 0.95,
    alpha: float = CVAR_ALPHA,
    n_resamples: int = 2000,
) -> PairedDifference:
    """Every metric of ``b`` minus ``a``, replica by replica (paired t; paired bootstrap for
    the CVaR). Probabilities are differenced as 0/1 indicators, so their interval is the
    paired t interval of the indicator difference."""
    if len(a) != len(b):
        raise ValueError(f"paired outcomes need equal replicas, got {len(a)} and {len(b)}")
    metrics: dict[str, Interval] = {}
    for name in (*MEAN_METRICS, *PROPORTION_METRICS):
        interval = mean_interval(b.values(name) - a.values(name), confidence)
        metrics[name] = interval.within(*difference_bounds(name, a, b))
    metrics[CVAR_METRIC] = paired_cvar_difference(
        a.class_position, b.class_position, rng, alpha, confidence, n_resamples
    )
    return PairedDifference(baseline, candidate, len(a), metrics)


@dataclass(frozen=True)
class Comparison:
    """Strategies compared on common random numbers for one car of one scenario."""

    scenario: str
    car: str
    seed: int
    confidence: float
    strategies: list[StrategySummary]
    differences: list[PairedDifference]
    """Every strategy after the first minus the first (the baseline)."""
    stop_reason: str = "replicas"
    """Why sampling stopped: "replicas" (all run), "precision" (intervals narrow enough) or
    "interrupted" (Ctrl-C; what finished is kept)."""
    forced: list[str] = field(default_factory=list)
    """What-if events forced on every race, as script text."""
    cvar_alpha: float = CVAR_ALPHA
    """Share of worst races the CVaR metric averages."""

    @property
    def metric_labels(self) -> dict[str, str]:
        return metric_labels(self.cvar_alpha)

    @property
    def replicas(self) -> int:
        return self.strategies[0].replicas if self.strategies else 0

    def class_position_half_width(self) -> float:
        """Widest half-width of the mean class position (each strategy and each paired
        difference); the quantity ``--precision`` drives below its target."""
        widths = [s.metrics["class_position"].half_width for s in self.strategies]
        widths += [d.metrics["class_position"].half_width for d in self.differences]
        return max(widths) if widths else math.inf

    def to_dict(self) -> dict:
        return {
            "scenario": self.scenario,
            "car": self.car,
            "seed": self.seed,
            "replicas": self.replicas,
            "confidence": self.confidence,
            "cvar_alpha": self.cvar_alpha,
            "stop_reason": self.stop_reason,
            "forced": list(self.forced),
            "strategies": [s.to_dict() for s in self.strategies],
            "differences": [d.to_dict() for d in self.differences],
        }


def compare(
    scenario: str,
    car: str,
    seed: int,
    outcomes: Sequence[tuple[str, str, Outcomes]],
    confidence: float = 0.95,
    stop_reason: str = "replicas",
    forced: Sequence[str] = (),
    n_resamples: int = 2000,
    cvar_alpha: float = CVAR_ALPHA,
) -> Comparison:
    """Summaries of ``(label, spec, outcomes)`` per strategy and paired differences against
    the first, the CVaR over the worst ``cvar_alpha`` share of races; bootstrap resampling
    draws from a generator derived from ``seed``."""
    check_cvar_alpha(cvar_alpha)
    rng = np.random.default_rng([seed, 0x5EED])
    summaries = [
        summarise(lab, spec, o, rng, confidence, cvar_alpha, n_resamples)
        for lab, spec, o in outcomes
    ]
    base_label, _, base = outcomes[0]
    diffs = [
        paired_difference(base_label, base, lab, o, rng, confidence, cvar_alpha, n_resamples)
        for lab, _, o in outcomes[1:]
    ]
    return Comparison(
        scenario, car, seed, confidence, summaries, diffs, stop_reason, list(forced), cvar_alpha
    )
