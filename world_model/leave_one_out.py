"""Leave-one-race-out evaluation: fit on every race but one, score the one left out.

For each race that carries a scored channel, the learned model is fitted on all the other
races (one of them, drawn with the seed, for early stopping) and the baselines on all the
other races; both are scored on the left-out race (:func:`world_model.evaluate.evaluate`).
Pooled scores are lap-weighted means over the left-out races, so each race's laps are
scored by models that never saw that race.

The left-out predictions are kept as PIT values per race; :mod:`world_model.calibration`
fits its interval correction on them: ``model:calibrated`` is each race's coverage under the
correction fitted on the *other* races only, and ``calibration`` the correction fitted on every
race (what a shipped model carries).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from world_model.baselines import fit_baselines
from world_model.calibration import leave_one_race_out_coverage, pit_levels
from world_model.dataset import LapTable
from world_model.evaluate import CHANNELS, evaluate
from world_model.fit import FitConfig, fit_model, split_races

SCORE_KEYS = ("nll", "crps", "coverage_50", "coverage_80", "coverage_90")
MODEL = "model"
"""Name of the learned model in the results (its calibrated variant: ``model:calibrated``)."""


@dataclass(frozen=True)
class LeaveOneOutConfig:
    """What to fit per left-out race."""

    fit: FitConfig = field(default_factory=FitConfig)
    seed: int = 0
    races: tuple[str, ...] = ()
    """Races to leave out in turn (default: every race with a scored channel)."""
    threads: int = 1
    max_train_laps: int | None = None
    """Quick setting: at most this many training laps per fold drawn (seeded) from the laps
    that carry lap time only; every lap carrying fuel, energy or wear is kept. The model and
    the baselines train on the same laps."""


def races_with_channels(table: LapTable) -> dict[str, list[str]]:
    """Scored channel -> races with at least one observed value of it."""
    out: dict[str, list[str]] = {}
    for ch, cols in CHANNELS.items():
        observed = ~table.outcomes[:, list(cols)].isnan().all(dim=1).numpy()
        out[ch] = sorted(set(table.race[observed].tolist()))
    return out


def _subsample(table: LapTable, max_laps: int | None, seed: int) -> LapTable:
    """``table`` with its lap-time-only rows cut to at most ``max_laps`` (seeded draw)."""
    if max_laps is None or len(table) <= max_laps:
        return table
    rich = (~table.outcomes[:, 1:].isnan()).any(dim=1).numpy()
    timing = np.flatnonzero(~rich)
    keep = max(max_laps - int(rich.sum()), 0)
    drawn = np.random.default_rng(seed).choice(timing, size=min(keep, len(timing)), replace=False)
    return table.select(np.sort(np.concatenate([np.flatnonzero(rich), drawn])))


def _fit_fold(table: LapTable, race: str, cfg: LeaveOneOutConfig, fold_seed: int):
    table = _subsample(table.select(table.race != race), cfg.max_train_laps, fold_seed)
    pool = sorted(table.races)
    train_races, val_races = split_races(pool, 1, torch.Generator().manual_seed(fold_seed))
    train = table.select(np.isin(table.race, train_races))
    val = table.select(np.isin(table.race, val_races))
    model, history = fit_model(
        train, val, cfg.fit, fold_seed, info={"train_races": train_races, "val_races": val_races}
    )
    columns = tuple(c for cols in CHANNELS.values() for c in cols)
    baselines = fit_baselines(table.select(np.isin(table.race, pool)), columns, fold_seed)
    return model, baselines, len(history)


def run_leave_one_out(
    table: LapTable, cfg: LeaveOneOutConfig, progress: bool = True
) -> dict[str, object]:
    """Per-race and pooled scores of the learned model and every baseline, each race scored
    by methods fitted without it; also the PIT values of every method per race and channel."""
    by_channel = races_with_channels(table)
    races = list(cfg.races) or sorted({r for rs in by_channel.values() for r in rs})
    per_race: dict[str, dict] = {}
    pits: dict[str, dict] = {}
    fits: dict[str, dict] = {}
    started = time.time()
    bar = tqdm(races, desc="leave one out", disable=not progress, file=sys.stderr)
    with threadpool_limits(limits=cfg.threads):
        for i, race in enumerate(bar):
            bar.set_postfix_str(race[:32])
            t0 = time.time()
            model, baselines, epochs = _fit_fold(table, race, cfg, cfg.seed * 1000 + i)
            test = table.select(table.race == race)
            res = evaluate({MODEL: model}, baselines, test)
            pits[race] = {m: {ch: s.pop("pit", []) for ch, s in r.items()} for m, r in res.items()}
            per_race[race] = res
            fits[race] = {"epochs": epochs, "seconds": round(time.time() - t0, 1)}
            if progress:
                crps = {ch: round(s["crps"], 5) for ch, s in res[MODEL].items() if s.get("n")}
                best = {
                    ch: round(
                        min(
                            r[ch]["crps"] for m, r in res.items() if m != MODEL and "crps" in r[ch]
                        ),
                        5,
                    )
                    for ch in crps
                }
                bar.write(f"{race}: model {crps} best baseline {best} ({fits[race]})", sys.stderr)
    calibration = _calibrate(per_race, pits)
    return {
        "races": races,
        "calibration": calibration,
        "races_per_channel": by_channel,
        "per_race": per_race,
        "pooled": pool_scores(per_race),
        "pit": pits,
        "fits": fits,
        "seconds": round(time.time() - started, 1),
    }


def _calibrate(per_race: dict[str, dict], pits: dict[str, dict]) -> dict[str, dict]:
    """Add ``model:calibrated`` coverage per race (conformal bounds fitted on the other left-out
    races' PIT values); return the bounds fitted on every race, per channel (to ship)."""
    shipped = {}
    for ch in CHANNELS:
        by_race = {r: np.asarray(p[MODEL][ch]) for r, p in pits.items() if len(p[MODEL][ch])}
        if not by_race:
            continue
        for race, cov in leave_one_race_out_coverage(by_race).items():
            per_race[race].setdefault(f"{MODEL}:calibrated", {})[ch] = cov
        shipped[ch] = pit_levels(np.concatenate(list(by_race.values())))
    return shipped


def pool_scores(per_race: dict[str, dict]) -> dict[str, dict[str, dict[str, float]]]:
    """Lap-weighted means of every score over the races (method -> channel -> scores)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for res in per_race.values():
        for method, channels in res.items():
            for ch, s in channels.items():
                n = s.get("n", 0)
                if not n:
                    continue
                acc = out.setdefault(method, {}).setdefault(ch, {"n": 0})
                acc["n"] += n
                for key in SCORE_KEYS:
                    if key in s:
                        acc[key] = acc.get(key, 0.0) + s[key] * n
    for channels in out.values():
        for s in channels.values():
            for key in SCORE_KEYS:
                if key in s:
                    s[key] /= s["n"]
    return out


def verdict(result: dict, model: str = MODEL) -> dict[str, dict[str, object]]:
    """Per channel: the races where ``model`` beats every baseline's CRPS, their share, and
    whether it beats every baseline pooled (with the margin over the best baseline)."""
    out: dict[str, dict[str, object]] = {}
    methods = {m for res in result["per_race"].values() for m in res}
    baselines = sorted(m for m in methods if not m.startswith(MODEL))
    for ch in CHANNELS:
        wins, scored = [], []
        for race, res in result["per_race"].items():
            mine = res.get(model, {}).get(ch, {})
            if not mine.get("n"):
                continue
            scored.append(race)
            rivals = [res[b][ch]["crps"] for b in baselines if res[b][ch].get("n")]
            if rivals and mine["crps"] < min(rivals):
                wins.append(race)
        pooled = result["pooled"]
        mine = pooled.get(model, {}).get(ch)
        rivals = {b: pooled[b][ch]["crps"] for b in baselines if ch in pooled.get(b, {})}
        if not scored or mine is None or not rivals:
            continue
        best = min(rivals, key=rivals.get)
        out[ch] = {
            "races_won": len(wins),
            "races_scored": len(scored),
            "share_won": len(wins) / len(scored),
            "best_baseline": best,
            "pooled_gain_over_best": 1.0 - mine["crps"] / rivals[best],
            "beats_every_baseline_pooled": mine["crps"] < rivals[best],
            "pooled_coverage_80": mine["coverage_80"],
            "pooled_calibrated_coverage_80": pooled.get(f"{model}:calibrated", {})
            .get(ch, {})
            .get("coverage_80"),
        }
    return out
