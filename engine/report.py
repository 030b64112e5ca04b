"""Evaluation results for people and tools: a terminal table, CSV rows, a PDF or HTML report.

The report bundles the comparison table with the figures of :mod:`engine.plots`: outcome
distributions of every strategy side by side, and for one representative sample race per
strategy (the same replica, so the same weather and incidents) the strategy Gantt, position
and gap-to-leader charts, and fuel / energy and tyre-wear traces of the evaluated car.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.montecarlo import (
    CVAR_METRIC,
    PROPORTION_METRICS,
    Comparison,
    Interval,
)
from engine.readable_state import hms

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from engine.evaluate import Evaluation
    from engine.race import RaceResult

_DIGITS = {"class_position": 2, "overall_position": 2, "laps": 1, "pit_stops": 2}


def _digits(metric: str) -> int:
    if metric in PROPORTION_METRICS:
        return 3
    if metric == CVAR_METRIC:
        return 2
    return _DIGITS.get(metric, 1)


def format_interval(metric: str, iv: Interval, signed: bool = False) -> str:
    """``4.12 [3.98, 4.26]`` with digits suited to the metric; a finish time (a race time)
    as h:mm:ss, ``1:02:05 [1:01:40, 1:02:31]`` (a difference of them stays in seconds)."""
    d = _digits(metric)
    sign = "+" if signed else ""
    clock = metric == "finish_time_s" and not signed

    def num(x: float) -> str:
        if not math.isfinite(x):
            return "n/a"
        return hms(x) if clock else f"{x:{sign}.{d}f}"

    if not (math.isfinite(iv.low) and math.isfinite(iv.high)):
        return num(iv.estimate)
    mark = CLIPPED_MARK if iv.clipped else ""
    return f"{num(iv.estimate)} [{num(iv.low)}, {num(iv.high)}]{mark}"


CLIPPED_MARK = "*"
CLIPPED_NOTE = (
    "* interval cut to the possible range (a position from 1 to the class size, a probability "
    "difference within +-1): too few races for it; run more"
)


def _any_clipped(c: Comparison) -> bool:
    groups = [s.metrics for s in c.strategies] + [d.metrics for d in c.differences]
    return any(iv.clipped for metrics in groups for iv in metrics.values())


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """A temp path beside ``path`` to write; on success it gets the usual file mode and
    replaces ``path`` in one step (``os.replace``), on failure it is removed: a reader never
    sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the default mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def text_grid(header: list[str], rows: list[list[str]]) -> str:
    """Rows of text cells as left-aligned columns under a header and a rule."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _share(count: int | None, total: int) -> str:
    return f"{(count or 0) / total:.3f}"


def format_table(comparison: Comparison) -> str:
    """The comparison as plain-text tables: per-strategy figures, paired differences and the
    class-position distribution."""
    c = comparison
    level = f"{round(c.confidence * 100)} %"
    head = (
        f"{c.scenario}: car #{c.car}, {c.replicas} races per strategy, seed {c.seed}, "
        f"{level} intervals (stopped: {c.stop_reason})"
    )
    if c.forced:
        head += f"\nforced events: {', '.join(c.forced)}"
    parts = [head, ""]
    labels = [s.label for s in c.strategies]
    rows = [
        [
            "finish time (h:mm:ss)" if m == "finish_time_s" else label,
            *(format_interval(m, s.metrics[m]) for s in c.strategies),
        ]
        for m, label in c.metric_labels.items()
    ]
    parts.append(text_grid(["metric", *labels], rows))
    if c.differences:
        parts += ["", "paired differences (same races; negative position = better)"]
        rows = [
            [label, *(format_interval(m, d.metrics[m], signed=True) for d in c.differences)]
            for m, label in c.metric_labels.items()
        ]
        parts.append(text_grid(["metric", *(d.label for d in c.differences)], rows))
    positions = sorted({p for s in c.strategies for p in s.class_position_counts})
    if positions:
        parts += ["", "class position distribution (share of races)"]
        rows = [
            [f"P{p}", *(_share(s.class_position_counts.get(p), s.replicas) for s in c.strategies)]
            for p in positions
        ]
        parts.append(text_grid(["position", *labels], rows))
    if _any_clipped(c):
        parts += ["", CLIPPED_NOTE]
    return "\n".join(parts)


CSV_COLUMNS = (
    "section",
    "strategy",
    "metric",
    "estimate",
    "low",
    "high",
    "replicas",
    "cvar_alpha",
)


def comparison_csv(comparison: Comparison) -> str:
    """Every figure as one CSV row: ``section`` is ``strategy``, ``difference`` (strategy is
    then ``B - A``) or ``distribution`` (metric ``class_position=P`` / ``overall_position=P``,
    estimate the share of races); ``cvar_alpha`` is the CVaR row's level (the share of worst
    races it averages), blank on every other row."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)

    def blank(x: float) -> str:
        return repr(float(x)) if math.isfinite(x) else ""

    def level(metric: str) -> str:
        return repr(float(comparison.cvar_alpha)) if metric == CVAR_METRIC else ""

    for s in comparison.strategies:
        for m, iv in s.metrics.items():
            w.writerow(
                [
                    "strategy",
                    s.label,
                    m,
                    blank(iv.estimate),
                    blank(iv.low),
                    blank(iv.high),
                    s.replicas,
                    level(m),
                ]
            )
    for d in comparison.differences:
        for m, iv in d.metrics.items():
            w.writerow(
                [
                    "difference",
                    d.label,
                    m,
                    blank(iv.estimate),
                    blank(iv.low),
                    blank(iv.high),
                    d.replicas,
                    level(m),
                ]
            )
    for s in comparison.strategies:
        for name, counts in (
            ("class_position", s.class_position_counts),
            ("overall_position", s.overall_position_counts),
        ):
            for p, n in sorted(counts.items()):
                w.writerow(
                    [
                        "distribution",
                        s.label,
                        f"{name}={p}",
                        repr(n / s.replicas),
                        "",
                        "",
                        s.replicas,
                        "",
                    ]
                )
    return out.getvalue()


def representative_replica(races: Mapping[str, RaceResult], car: str) -> int:
    """The sample race where the first strategy's class position for ``car`` is the median
    (the lowest such replica), so the plots show a typical race rather than the first."""
    first = next(iter(races.values()))
    c = first.car_numbers.index(car)
    pos = np.asarray(first.class_position[:, c], dtype=np.float64)
    target = np.sort(pos)[(len(pos) - 1) // 2]
    return int(np.flatnonzero(pos == target)[0])


GANTT_MAX_CARS = 24
"""Above this many entries the report's Gantt shows the evaluated car's class only."""


def _gantt_cars(result: RaceResult, car: str) -> list[str] | None:
    if result.n_cars <= GANTT_MAX_CARS:
        return None
    klass = result.car_classes[result.car_numbers.index(car)]
    return [n for n, k in zip(result.car_numbers, result.car_classes, strict=True) if k == klass]


def report_figures(
    evaluation: Evaluation, races: Mapping[str, RaceResult]
) -> list[tuple[str, Figure]]:
    """(caption, figure) of every report figure, in report order."""
    from engine import plots

    car = evaluation.comparison.car
    figures: list[tuple[str, Figure]] = [
        ("Outcome distributions", plots.outcome_distributions(evaluation.outcomes)),
    ]
    if races:
        r = representative_replica(races, car)
        for label, result in races.items():
            gantt = plots.strategy_gantt(result, r, car, cars=_gantt_cars(result, car))
            figures.append((f"Strategy Gantt, {label}", gantt))
            figures.append(
                (f"Position and gap to class leader, {label}", plots.position_chart(result, r, car))
            )
        figures.append(
            (f"Fuel, energy and tyre wear of car #{car}", plots.fuel_and_tyre_traces(races, r, car))
        )
    return figures


def _table_figure(text: str, title: str) -> Figure:
    from matplotlib.figure import Figure

    lines = text.splitlines()
    fig = Figure(figsize=(11.69, max(4.0, 0.18 * len(lines) + 1.2)))
    fig.suptitle(title)
    fig.text(0.02, 0.95, text, family="monospace", fontsize=7, va="top")
    return fig


def write_report(
    path: str | Path,
    evaluation: Evaluation,
    races: Mapping[str, RaceResult],
    title: str = "stintsim evaluation",
) -> list[str]:
    """Write a multi-page PDF (``.pdf``) or a self-contained HTML page (``.html``) with the
    table and every figure, atomically; returns the figure captions in order."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".pdf", ".html", ".htm"):
        raise ValueError(f"report {path}: expected a .pdf or .html file name")
    table = format_table(evaluation.comparison)
    figures = report_figures(evaluation, races)
    with atomic_output(path) as tmp:
        if suffix == ".pdf":
            from matplotlib.backends.backend_pdf import PdfPages

            with PdfPages(tmp) as pdf:
                pdf.savefig(_table_figure(table, title))
                for _, fig in figures:
                    pdf.savefig(fig)
                info = pdf.infodict()
                info["Title"] = title
        else:
            tmp.write_text(_html(title, table, figures), encoding="utf-8")
    return [caption for caption, _ in figures]


def _html(title: str, table: str, figures: list[tuple[str, Figure]]) -> str:
    body = [f"<h1>{html.escape(title)}</h1>", f"<pre>{html.escape(table)}</pre>"]
    for caption, fig in figures:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        body.append(
            f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}pre{font-size:12px}"
        "img{max-width:100%}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
