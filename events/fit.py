"""Fit every incident model to a lap store and save the posterior: ``python -m events.fit``.

Each model is fitted on the races not held out by SVI (full-rank Gaussian guide started from
the Laplace approximation) or, for the small models (``--nuts``; the failure model by
default), sampled by NUTS; parameters a store cannot inform (no records of that kind) keep
their priors, and the file says which.
A posterior-predictive check per model is printed: the observed statistic beside its
simulated 5-95 % interval, on the training races and on the held-out races, plus the
engine-facing sampler run end to end over each held-out race.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from data.entry import run_main
from events import observations as obs
from events import ppc
from events.inference import FitResult, fit_nuts, fit_svi
from events.models import contacts, damage, failures, flags, neutralisations, weather
from events.posterior import complete_with_priors, save_posterior
from events.priors import sample_priors
from events.sampler import PosteriorEventModel, ReferenceExposure

DEFAULT_HOLDOUT = ("wec_2026_lemans_24h_race",)
NUTS_MODELS = ("damage", "failures", "temperature", "flags")
"""Models small enough for NUTS (few parameters and latents)."""
DEFAULT_NUTS = ("failures",)
"""Models sampled by NUTS unless ``--nuts`` says otherwise: the failure model's race-class
frailty is a funnel that the Gaussian SVI guide widens (race sd ~1.1 against NUTS's ~0.35 on
the same data), which inflates the retirement spread the engine sees."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m events.fit",
        description="Fit the incident, neutralisation and weather models to a lap store by "
        "SVI, save their posterior draws in one file and print posterior-predictive checks.",
    )
    p.add_argument("--db", required=True, type=Path, help="lap store (SQLite) to fit on")
    p.add_argument("--out", required=True, type=Path, help="posterior file to write (.pt)")
    p.add_argument(
        "--holdout",
        action="append",
        default=None,
        metavar="SESSION_NAME",
        help="race (sessions.name) left out of the fit and checked on; repeatable "
        f"(default: {', '.join(DEFAULT_HOLDOUT)}; pass 'none' to hold out nothing)",
    )
    p.add_argument(
        "--steps", type=int, default=400, help="SVI steps per model after the Laplace start (400)"
    )
    p.add_argument(
        "--draws", type=int, default=1000, help="posterior draws saved per parameter (1000)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the fit and the checks (0)")
    p.add_argument(
        "--nuts",
        action="append",
        default=None,
        choices=(*NUTS_MODELS, "none"),
        help="sample this model's posterior with NUTS instead of SVI (repeatable; slower, "
        "exact up to Monte Carlo error; the small models only; default: "
        f"{', '.join(DEFAULT_NUTS)}; 'none' fits every model by SVI)",
    )
    p.add_argument("--warmup", type=int, default=300, help="NUTS adaptation steps per model (300)")
    p.add_argument(
        "--replicas",
        type=int,
        default=200,
        help="replicas of the end-to-end sampler check per held-out race (200)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads while fitting (default 1: the tensors are small, and more threads "
        "only contend on a busy machine)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    p.add_argument(
        "--json", action="store_true", help="print the results as one JSON object on stdout"
    )
    return p


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _contact_reference_rate(draws: dict[str, torch.Tensor]) -> torch.Tensor:
    """Contact hazard per car-hour of each draw at the reference exposure."""
    return ReferenceExposure().contact_hazard(draws)


@dataclass
class _Fits:
    """The fits of :func:`fit_all`, in order: each adds its draws to ``out`` and its line to
    ``report`` (a model's seed is ``seed`` plus the number of reports before it)."""

    conn: Any
    train: list[obs.Race]
    steps: int
    draws: int
    seed: int
    progress: bool
    nuts: tuple[str, ...]
    warmup: int
    out: dict[str, torch.Tensor] = field(default_factory=dict)
    report: dict[str, dict[str, Any]] = field(default_factory=dict)

    def run(self, name: str, model: Any, data: Any, params: list[str], n: int, what: str) -> None:
        seed = self.seed + len(self.report)
        if name in self.nuts:
            result: FitResult = fit_nuts(
                model,
                data,
                params,
                draws=self.draws,
                warmup=self.warmup,
                seed=seed,
                progress=self.progress,
            )
        else:
            result = fit_svi(
                model,
                data,
                params,
                steps=self.steps,
                draws=self.draws,
                seed=seed,
                progress=self.progress,
                label=name,
            )
        self.out.update(result.draws)
        self.report[name] = {
            "fitted": params,
            "rows": n,
            "data": what,
            "method": "NUTS" if name in self.nuts else "SVI (Laplace start)",
            "final_loss": round(result.final_loss, 3),
        }

    def contacts_and_damage(self) -> None:
        try:
            contact_rows, damage_rows = obs.contact_data(self.conn, self.train)
            self.run(
                "contacts",
                contacts.model,
                contact_rows,
                [*contacts.PRIORS, "contact_sim_offset"],
                int(contact_rows.hours.shape[0]),
                "car-laps of races recording contacts (rFactor 2 / LMU)",
            )
            self.run(
                "damage",
                damage.model,
                damage_rows,
                list(damage.PRIORS),
                int(damage_rows.terminal.shape[0]),
                "contacts and whether they ended the race",
            )
        except obs.StoreError as e:
            skipped = {"fitted": [], "prior_only_because": str(e)}
            self.report["contacts"] = self.report["damage"] = skipped

    def failures(self) -> None:
        # Retirements not explained by terminal contacts are failures (contact rate at the
        # reference exposure times the terminal share; priors where the store has no contacts).
        source = dict(self.out)
        if "contact_log_rate" not in source or "damage_terminal" not in source:
            prior = {**contacts.PRIORS, **damage.PRIORS}
            generator = torch.Generator().manual_seed(self.seed)
            source.update(sample_priors(prior, self.draws, generator))
        other = float((_contact_reference_rate(source) * source["damage_terminal"]).mean())
        try:
            fd = obs.failure_data(self.conn, self.train, other_hazard=other)
            self.run(
                "failures",
                failures.model,
                fd,
                list(failures.PRIORS),
                int(fd.age_h.shape[0]),
                f"cars of real races, retired or running at the end (terminal-contact hazard "
                f"{other:.2e} per car-hour taken as known)",
            )
        except obs.StoreError as e:
            self.report["failures"] = {"fitted": [], "prior_only_because": str(e)}

    def neutralisations_and_flags(self) -> None:
        nd = obs.neutralisation_data(self.conn, self.train)
        if nd.car_hours.numel():
            self.run(
                "neutralisations",
                neutralisations.model,
                nd,
                list(neutralisations.PRIORS),
                int(nd.car_hours.shape[0]),
                f"FCY and safety-car periods of {', '.join(obs.NEUTRALISATION_SERIES)} races",
            )
        else:
            self.report["neutralisations"] = {"fitted": [], "prior_only_because": "no WEC race"}
        fl = obs.flag_lap_data(self.conn, self.train)
        if any(v.numel() for v in fl.log_ratio.values()):
            self.run(
                "flags",
                flags.model,
                fl,
                ["flag_lap_sd", "flag_race_sd", "flag_fcy_lap", "flag_sc_lap"],
                sum(int(v.numel()) for v in fl.log_ratio.values()),
                "laps run wholly under FCY or safety car against the car's green pace",
            )
        else:
            self.report["flags"] = {"fitted": [], "prior_only_because": "no neutralised laps"}

    def temperature(self) -> None:
        try:
            td = obs.temperature_data(self.conn, self.train)
            self.run(
                "temperature",
                weather.temperature_model,
                td,
                list(weather.TEMPERATURE_PARAMS),
                int(td.air_c.shape[0]),
                "weather-station air and track temperatures, one sample per 15 min",
            )
        except obs.StoreError as e:
            self.report["temperature"] = {"fitted": [], "prior_only_because": str(e)}


def fit_all(
    conn: Any,
    train: list[obs.Race],
    *,
    steps: int,
    draws: int,
    seed: int,
    progress: bool,
    nuts: tuple[str, ...] = (),
    warmup: int = 300,
) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, Any]]]:
    """(posterior draws, per-model report) for the training races."""
    fits = _Fits(conn, train, steps, draws, seed, progress, nuts, warmup)
    fits.contacts_and_damage()
    fits.failures()
    fits.neutralisations_and_flags()
    fits.temperature()
    fits.report["rain"] = {"fitted": [], "prior_only_because": "no rain records in the lap store"}
    fits.report["punctures"] = {"fitted": [], "prior_only_because": "no puncture records"}
    return fits.out, fits.report


def run_checks(
    conn: Any,
    all_races: list[obs.Race],
    holdout: set[str],
    draws: dict[str, torch.Tensor],
    seed: int,
    replicas: int,
) -> list[ppc.Check]:
    """Every posterior-predictive check on every race it applies to."""
    g = torch.Generator().manual_seed(seed + 1000)
    model = PosteriorEventModel(draws)
    # Terminal contacts, per draw: the retirements failures need not explain.
    other = _contact_reference_rate(draws) * draws["damage_terminal"]
    checks: list[ppc.Check] = []
    for race in all_races:
        split = "held-out" if race.name in holdout else "train"
        if race.series in obs.NEUTRALISATION_SERIES:
            checks += ppc.neutralisation_checks(conn, race, split, draws, g)
            fl = obs.flag_lap_data(conn, [race])
            checks += ppc.flag_lap_checks(race.name, split, fl.log_ratio, draws, g)
        if race.series in obs.REAL_SERIES:
            checks += ppc.failure_checks(conn, race, split, draws, other, g)
        try:
            cd, dd = obs.contact_data(conn, [race])
            checks += ppc.contact_checks(race.name, split, cd, draws, g)
            checks += ppc.terminal_checks(race.name, split, dd.terminal, draws, g)
        except obs.StoreError:
            pass
        try:
            td = obs.temperature_data(conn, [race])
            checks += ppc.temperature_checks(race.name, split, td, draws, g)
        except obs.StoreError:
            pass
        if split == "held-out" and race.series in obs.NEUTRALISATION_SERIES:
            hours = obs.race_hours(conn, race)
            cars = obs.car_records(conn, race)
            observed = {
                "FCY periods per 24 h": len(obs.flag_periods(conn, race, ppc.FlagState.FCY))
                * 24.0
                / hours,
                "SC periods per 24 h": len(obs.flag_periods(conn, race, ppc.FlagState.SAFETY_CAR))
                * 24.0
                / hours,
                "retirements": float(sum(c.retired for c in cars)),
            }
            classes = sorted({c.class_name or "?" for c in cars})
            lap_m = race.lap_km * 1000.0 if race.lap_km else None
            checks += ppc.sampler_checks(
                model.configured(classes, lap_m),
                race.name,
                split,
                observed,
                [classes.index(c.class_name or "?") for c in cars],
                hours,
                race.start_hour_of_day or 15.0,
                g,
                replicas=replicas,
            )
    return checks


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, args.threads))
    try:
        return _run(args, argv)
    finally:
        torch.set_num_threads(previous_threads)


def _run(args: argparse.Namespace, argv: list[str] | None) -> int:
    command = "python -m events.fit " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        conn = obs.connect(args.db)
    except obs.StoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    holdout = set(DEFAULT_HOLDOUT if args.holdout is None else args.holdout) - {"none"}
    all_races = obs.races(conn)
    names = {r.name for r in all_races}
    unknown = sorted(holdout - names)
    if unknown:
        print(
            f"error: {args.db}: no race named {unknown} in table sessions "
            f"(races: {', '.join(sorted(names))})",
            file=sys.stderr,
        )
        return 2
    train = [r for r in all_races if r.name not in holdout]
    draws, report = fit_all(
        conn,
        train,
        steps=args.steps,
        draws=args.draws,
        seed=args.seed,
        progress=not args.no_progress,
        nuts=DEFAULT_NUTS if args.nuts is None else tuple(n for n in args.nuts if n != "none"),
        warmup=args.warmup,
    )
    draws, prior_only = complete_with_priors(draws, torch.Generator().manual_seed(args.seed))
    checks = run_checks(conn, all_races, holdout, draws, args.seed, args.replicas)
    metadata = {
        "command": command,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": {
            "db": str(args.db.resolve()),
            "sha256": _sha256(args.db),
            "train": [r.name for r in train],
            "holdout": sorted(holdout),
        },
        "seed": args.seed,
        "steps": args.steps,
        "models": report,
        "prior_only_parameters": prior_only,
        "checks": [c.as_dict() for c in checks],
    }
    save_posterior(args.out, draws, metadata)
    covered = {s: [c.covered for c in checks if c.split == s] for s in ("train", "held-out")}
    summary = {s: f"{sum(v)}/{len(v)}" for s, v in covered.items()}
    if args.json:
        print(json.dumps({**metadata, "out": str(args.out), "coverage": summary}))
    else:
        for name, r in report.items():
            print(
                f"{name:<16}"
                + (
                    f"fitted on {r['rows']} rows: {r['data']}"
                    if r["fitted"]
                    else f"prior only: {r['prior_only_because']}"
                )
            )
        print()
        print(ppc.format_table(checks))
        print(
            f"\ninside the 5-95 % interval: train {summary['train']}, "
            f"held-out {summary['held-out']}; posterior written to {args.out}"
        )
    return 0


if __name__ == "__main__":
    run_main(main)
