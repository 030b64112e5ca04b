"""The PDF and HTML reports bundle the table with every figure; the table reads right."""

from __future__ import annotations

import re

import numpy as np
import pytest

from engine.commands.evaluate import main
from engine.evaluate import evaluate, sample_races
from engine.montecarlo import Interval
from engine.report import format_interval, representative_replica, write_report
from engine.scenario import load_scenario

STRATEGIES = ["fuel-reserve", "fixed:laps=4"]


@pytest.fixture(scope="module")
def run():
    scenario = load_scenario("test_race")
    ev = evaluate(scenario, STRATEGIES, 4, seed=5, chunk_replicas=4)
    races = sample_races(scenario, STRATEGIES, seed=5, replicas=3)
    return ev, races


def test_interval_formatting() -> None:
    assert format_interval("class_position", Interval(4.123, 3.9, 4.35)) == "4.12 [3.90, 4.35]"
    assert format_interval("class_win", Interval(0.25, 0.1, 0.5)) == "0.250 [0.100, 0.500]"
    assert format_interval("laps", Interval(-1.0, -2.0, 0.0), signed=True) == "-1.0 [-2.0, +0.0]"
    assert format_interval("laps", Interval(17.0, float("nan"), float("nan"))) == "17.0"


def test_representative_replica_is_the_median_race(run) -> None:
    _, races = run
    first = races["fuel-reserve"]
    r = representative_replica(races, "1")
    pos = first.class_position[:, first.car_numbers.index("1")]
    assert pos[r] == np.sort(pos)[(len(pos) - 1) // 2]


def test_pdf_report_has_a_page_per_figure_plus_the_table(run, tmp_path) -> None:
    ev, races = run
    path = tmp_path / "report.pdf"
    captions = write_report(path, ev, races, title="test")
    # outcomes, Gantt and positions per strategy, one traces page
    assert captions[0] == "Outcome distributions"
    assert len(captions) == 1 + 2 * len(STRATEGIES) + 1
    assert sum(c.startswith("Strategy Gantt") for c in captions) == len(STRATEGIES)
    data = path.read_bytes()
    assert data.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b", data)) == len(captions) + 1
    assert not list(tmp_path.glob(".report.pdf.*"))  # no temp file left behind


def test_html_report_embeds_every_figure_and_the_table(run, tmp_path) -> None:
    ev, races = run
    path = tmp_path / "report.html"
    captions = write_report(path, ev, races, title="what if")
    text = path.read_text()
    assert text.count("<img ") == len(captions)
    assert all(f"<figcaption>{c}</figcaption>" in text for c in captions if "&" not in c)
    assert "fixed:laps=4 - fuel-reserve" in text and "CVaR10% class position" in text
    with pytest.raises(ValueError, match=r"expected a \.pdf or \.html"):
        write_report(tmp_path / "report.png", ev, races)


def test_cli_writes_the_report(tmp_path, capsys) -> None:
    path = tmp_path / "cmp.html"
    rc = main(
        [
            "test_race",
            "--strategy",
            "fuel-reserve",
            "--replicas",
            "2",
            "--chunk-replicas",
            "2",
            "--no-progress",
            "--report",
            str(path),
            "--report-races",
            "2",
        ]
    )
    assert rc == 0
    assert "races per strategy" in capsys.readouterr().out
    assert path.read_text().count("<img ") == 4


def test_gantt_of_a_large_field_shows_the_evaluated_class(run, monkeypatch) -> None:
    from engine import report

    ev, races = run
    figures = dict(report.report_figures(ev, races))
    assert len(figures["Strategy Gantt, fuel-reserve"].axes[0].collections) == 5
    monkeypatch.setattr(report, "GANTT_MAX_CARS", 3)  # test_race has 5 entries
    figures = dict(report.report_figures(ev, races))
    rows = figures["Strategy Gantt, fuel-reserve"].axes[0].collections
    assert sorted(c.get_label() for c in rows) == ["#1", "#2", "#3"]  # the HYPERCAR class


def test_outputs_are_replaced_atomically_with_the_default_mode(tmp_path) -> None:
    import os

    from engine.report import atomic_output

    path = tmp_path / "out.csv"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted while writing")
    assert path.read_text() == "old" and list(tmp_path.iterdir()) == [path]
    with atomic_output(path) as tmp:
        tmp.write_text("new")
    umask = os.umask(0)
    os.umask(umask)
    assert path.read_text() == "new"
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
