"""Score lap models on held-out races: ``python -m world_model.evaluate --db DB --model FILE``.

For lap time, fuel used and tyre wear (four wheels pooled) on the test races: mean negative
log-likelihood (natural log of the density in the channel's units), mean CRPS (the channel's
units: seconds, fraction of tank, fraction of tread) and the coverage of the central 50 / 80 /
90 % predictive intervals, for every model given (e.g. the MLP and the GRU side by side) and
for the baselines of :mod:`world_model.baselines` fitted on the models' training races. The
learned models are scored with their whole-ensemble predictive, conditioned on the lap's flag
state, through the forward the engine's ``sample`` uses (MLP hidden matmuls in bfloat16 where
the CPU has it natively, see :mod:`world_model.precision`); the GRU reads each stint's history
(one step ahead, observed previous laps), and is scored a second time (``NAME:summary``) from
its summary state alone, as the engine's stateless ``sample`` uses it.

Scores pool the laps of every test race, so the race with the most laps dominates them;
``--by-race`` adds each test race's scores. Interval coverage differs from race to race by
far more than sampling error (the shipped model's 80 % interval covers 73-92 % of the laps of
the races it was fitted or validated on, and 55-93 % of a race's laps when that race is left
out of training: see the model card), so one race's coverage is a weak guide to another's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from data.entry import run_main
from world_model.baselines import Baseline, fit_baselines
from world_model.calibration import coverage
from world_model.checkpoint import CheckpointError, load_checkpoint
from world_model.dataset import LapTable, load_table
from world_model.distributions import Mixture
from world_model.fit import Batches, FitConfig
from world_model.learned import LearnedLapModel
from world_model.networks import GRUEnsemble, decode
from world_model.precision import matmul_dtype
from world_model.targets import ENERGY, FUEL, LAP, TARGET_NAMES, WEAR0

CHANNELS: dict[str, tuple[int, ...]] = {
    "lap_time_s": (LAP,),
    "fuel_used": (FUEL,),
    "energy_used": (ENERGY,),
    "wear": tuple(range(WEAR0, WEAR0 + 4)),
}
"""Scored channels and the target columns each pools."""
NOMINAL = (0.5, 0.8, 0.9)
CHUNK = 2048


def model_predictive(
    model: LearnedLapModel, table: LapTable, history: bool = True
) -> dict[str, Mixture]:
    """Whole-ensemble predictive of every channel for the rows of ``table`` (flag-aware;
    with ``history`` the recurrent model reads each stint's observed laps, else it starts
    every lap from its summary state, as the engine's stateless ``sample`` does)."""
    m = model.with_flag_effects(True)
    if not isinstance(m.net, GRUEnsemble) or not history:
        parts = [
            m.predictive(table.conditions.index(torch.arange(s, min(s + CHUNK, len(table)))))
            for s in range(0, len(table), CHUNK)
        ]
        return {k: _cat([p[k] for p in parts]) for k in parts[0]}
    window = int(m.info.get("config", {}).get("window_laps", FitConfig.window_laps))
    data = Batches(m, table, FitConfig(arch="gru", window_laps=window))
    raw_rows = torch.zeros(m.members, len(table), m.net.out.weight.shape[-1])
    with torch.inference_mode():
        for s in range(0, len(data), 256):
            units = data.units[s : s + 256]
            raw, _ = data.outputs(m.net, units, None)
            flat = units.reshape(-1)
            keep = flat >= 0
            raw_rows[:, flat[keep]] = raw[:, keep]
        return m.mixtures_from_heads(decode(raw_rows), table.conditions)


def _cat(parts: list[Mixture]) -> Mixture:
    return Mixture(*(torch.cat([getattr(p, f) for p in parts]) for f in ("weight", "loc", "scale")))


def score(mixtures: list[Mixture], observed: list[torch.Tensor]) -> dict[str, float]:
    """NLL, CRPS, interval coverage and PIT values pooled over the given columns."""
    nll, crps, pit = [], [], []
    for mix, y in zip(mixtures, observed, strict=True):
        ok = ~y.isnan()
        if not ok.any():
            continue
        mk, yk = mix.index(ok), y[ok]
        nll.append(-mk.log_prob(yk))
        crps.append(
            torch.cat(
                [
                    mk.index(torch.arange(s, min(s + CHUNK, len(yk)))).crps(yk[s : s + CHUNK])
                    for s in range(0, len(yk), CHUNK)
                ]
            )
        )
        pit.append(mk.cdf(yk))
    if not nll:
        return {"n": 0}
    nll_t, crps_t, pit_t = torch.cat(nll), torch.cat(crps), torch.cat(pit)
    out: dict[str, float] = {
        "n": int(nll_t.numel()),
        "nll": float(nll_t.mean()),
        "crps": float(crps_t.mean()),
    }
    for level in NOMINAL:
        lo, hi = 0.5 - level / 2, 0.5 + level / 2
        out[f"coverage_{round(level * 100)}"] = float(
            ((pit_t >= lo) & (pit_t <= hi)).float().mean()
        )
    out["pit"] = pit_t.tolist()
    return out


def evaluate(
    models: dict[str, LearnedLapModel], baselines: list[Baseline], test: LapTable
) -> dict[str, dict[str, dict[str, float]]]:
    """Scores per method and channel (methods: the models by name, then the baselines)."""
    results: dict[str, dict[str, dict[str, float]]] = {}
    runs = [(name, model, True) for name, model in models.items()]
    runs += [(f"{n}:summary", m, False) for n, m in models.items() if m.arch == "gru"]
    for name, model, history in runs:
        pred = model_predictive(model, test, history)
        results[name] = {
            ch: score([pred[TARGET_NAMES[c]] for c in cols], [test.outcomes[:, c] for c in cols])
            for ch, cols in CHANNELS.items()
        }
    for b in baselines:
        results[b.name] = {}
        for ch, cols in CHANNELS.items():
            if all(b.covers(c) for c in cols):
                mix = [b.predict(test, c) for c in cols]
                results[b.name][ch] = score(mix, [test.outcomes[:, c] for c in cols])
            else:
                results[b.name][ch] = {"n": 0}
    return results


def evaluate_by_race(
    models: dict[str, LearnedLapModel], baselines: list[Baseline], test: LapTable
) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """:func:`evaluate` on each race of ``test`` alone (race -> method -> channel -> scores,
    without PIT values)."""
    out = {}
    for race in test.races:
        res = evaluate(models, baselines, test.select(test.race == race))
        for r in res.values():
            for s in r.values():
                s.pop("pit", None)
        out[race] = res
    return out


def plot_pit(results: dict, path: str | Path) -> bool:
    """Histogram of lap-time PIT values per method (flat = calibrated), written atomically;
    False (nothing written) when no method scored a lap time."""
    names = [n for n in results if results[n]["lap_time_s"].get("n", 0)]
    if not names:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.0), sharey=True)
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        ax.hist(results[name]["lap_time_s"]["pit"], bins=20, range=(0, 1), density=True)
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("PIT of lap time")
    np.atleast_1d(axes)[0].set_ylabel("density")
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return True


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m world_model.evaluate",
        description="Score learned lap models and baselines (NLL, CRPS, interval coverage) on "
        "races held out of training.",
    )
    p.add_argument("--db", required=True, help="lap store (SQLite)")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="FILE",
        help="checkpoint to score; repeat to compare (e.g. the MLP and the GRU); required "
        "unless --leave-one-out",
    )
    p.add_argument(
        "--races",
        action="append",
        default=[],
        metavar="RACE",
        help="test race (session name); repeatable; default: the first model's holdout "
        "races, else its validation races (never trained on); with --leave-one-out: the "
        "races to leave out in turn (default: every race with a scored channel)",
    )
    p.add_argument(
        "--leave-one-out",
        action="store_true",
        help="fit a fresh model (the fit options below) and the baselines on every race but "
        "one and score the one left out, for every race; per race and pooled. Takes minutes "
        "(the model card gives the time of the full run)",
    )
    p.add_argument(
        "--arch", choices=("mlp", "gru"), default="mlp", help="--leave-one-out: architecture"
    )
    p.add_argument(
        "--epochs", type=int, default=FitConfig.epochs, help="--leave-one-out: most epochs"
    )
    p.add_argument(
        "--patience",
        type=int,
        default=FitConfig.patience,
        help="--leave-one-out: early-stopping patience [epochs]",
    )
    p.add_argument(
        "--members", type=int, default=FitConfig.members, help="--leave-one-out: ensemble members"
    )
    p.add_argument(
        "--max-train-laps",
        type=int,
        default=None,
        help="--leave-one-out quick setting: at most this many training laps per fold (laps "
        "with lap time only are drawn; laps with fuel, energy or wear all kept)",
    )
    p.add_argument(
        "--keep-pit",
        action="store_true",
        help="--leave-one-out --json: include the model's PIT values per race and channel",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--seed", type=int, default=0, help="seed of the gradient-boosting baseline")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads")
    p.add_argument("--plot", default=None, metavar="PNG", help="write a PIT histogram here")
    p.add_argument(
        "--by-race",
        action="store_true",
        help="also score each test race alone (the pooled scores weight races by their laps)",
    )
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.leave_one_out:
        return _main_leave_one_out(args)
    if not args.model:
        print("error: pass --model FILE (or --leave-one-out)", file=sys.stderr)
        return 2
    try:
        models = {}
        for path in args.model:
            m = load_checkpoint(path)
            models[f"{m.arch}:{Path(path).stem}"] = m
        table = load_table(args.db)
    except (CheckpointError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    first = next(iter(models.values()))
    test_races = sorted(
        args.races or first.info.get("holdout_races") or first.info.get("val_races", [])
    )
    if not test_races:
        print(
            "error: no test races: pass --races, or fit with --holdout or a validation race",
            file=sys.stderr,
        )
        return 2
    if not args.races and not first.info.get("holdout_races"):
        print(
            f"note: the model has no holdout races; scoring its validation races {test_races}"
            " (used for early stopping, never trained on); --leave-one-out scores every race",
            file=sys.stderr,
        )
    missing = sorted(set(test_races) - set(table.races))
    if missing:
        print(f"error: {args.db}: test races not in the lap store: {missing}", file=sys.stderr)
        return 2
    seen = set(first.info.get("train_races", [])) | set(first.info.get("val_races", []))
    leak = sorted(seen & set(test_races))
    if leak:
        print(f"warning: test races the model trained on: {leak}", file=sys.stderr)
    train_races = sorted(seen - set(test_races)) or [r for r in table.races if r not in test_races]
    train = table.select(np.isin(table.race, train_races))
    test = table.select(np.isin(table.race, test_races))
    # scikit-learn's OpenMP pool gets the same thread budget as torch.
    with threadpool_limits(limits=args.threads):
        columns = tuple(c for cols in CHANNELS.values() for c in cols)
        fitted = fit_baselines(train, columns, args.seed)
        results = evaluate(models, fitted, test)
        by_race = evaluate_by_race(models, fitted, test) if args.by_race else None
    if args.plot and not plot_pit(results, args.plot):
        print(
            f"warning: no test lap has a lap time to score; {args.plot} not written",
            file=sys.stderr,
        )
    baselines = [b.name for b in fitted]
    verdict = {
        name: {
            ch: all(
                results[name][ch]["crps"] < results[b][ch]["crps"]
                for b in baselines
                if results[b][ch].get("n", 0)
            )
            for ch in CHANNELS
            if results[name][ch].get("n", 0)
        }
        for name in results
        if name not in baselines
    }
    _add_calibrated(models, results)
    for r in results.values():
        for s in r.values():
            s.pop("pit", None)
    summary = {
        "mlp_matmul_dtype": str(matmul_dtype()).removeprefix("torch."),
        "test_races": test_races,
        "train_races": train_races,
        "scores": results,
        "beats_every_baseline_on_crps": verdict,
    }
    if by_race is not None:
        summary["by_race"] = by_race
    if args.json:
        print(json.dumps(summary))
    else:
        _print_table(summary)
    return 0


def _add_calibrated(models: dict[str, LearnedLapModel], results: dict) -> None:
    """``NAME:calibrated`` coverage for models carrying a conformal interval calibration
    (``info["interval_calibration"]``, fitted on left-out-race PIT values)."""
    for name, model in models.items():
        bounds = model.info.get("interval_calibration") or {}
        rows = {
            ch: {"n": results[name][ch]["n"], **coverage(results[name][ch]["pit"], b)}
            for ch, b in bounds.items()
            if results[name].get(ch, {}).get("n")
        }
        if rows:
            results[f"{name}:calibrated"] = rows


def _print_table(summary: dict) -> None:
    print(f"test races: {', '.join(summary['test_races'])}")
    print(f"MLP hidden matmuls in {summary['mlp_matmul_dtype']} (as the engine samples)")
    for ch in CHANNELS:
        print(f"\n{ch}")
        print(
            f"  {'method':<28}{'n':>7}{'NLL':>10}{'CRPS':>11}{'cov50':>7}{'cov80':>7}{'cov90':>7}"
        )
        for name, r in summary["scores"].items():
            s = r.get(ch, {})
            if not s.get("n"):
                print(f"  {name:<28}{0:>7}  (no rows)")
                continue
            if "nll" not in s:  # a calibrated interval: coverage only
                cov = f"{s['coverage_50']:>7.2f}{s['coverage_80']:>7.2f}{s['coverage_90']:>7.2f}"
                print(f"  {name:<28}{s['n']:>7}{'':>21}{cov}")
                continue
            print(
                f"  {name:<28}{s['n']:>7}{s['nll']:>10.3f}{s['crps']:>11.4g}"
                f"{s['coverage_50']:>7.2f}{s['coverage_80']:>7.2f}{s['coverage_90']:>7.2f}"
            )
    print(f"\nbeats every baseline on CRPS: {summary['beats_every_baseline_on_crps']}")
    for race, scores in summary.get("by_race", {}).items():
        print(f"\n{race}")
        for ch in CHANNELS:
            for name, r in scores.items():
                s = r.get(ch, {})
                if s.get("nll") is not None:
                    print(
                        f"  {ch:<11}{name:<28}{s['n']:>7}{s['crps']:>11.4g}"
                        f"{s['coverage_50']:>7.2f}{s['coverage_80']:>7.2f}{s['coverage_90']:>7.2f}"
                    )


def _main_leave_one_out(args: argparse.Namespace) -> int:
    from world_model.leave_one_out import LeaveOneOutConfig, run_leave_one_out, verdict

    try:
        table = load_table(args.db)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    missing = sorted(set(args.races) - set(table.races))
    if missing:
        print(f"error: {args.db}: races not in the lap store: {missing}", file=sys.stderr)
        return 2
    fit = FitConfig(
        arch=args.arch, epochs=args.epochs, patience=args.patience, members=args.members
    )
    cfg = LeaveOneOutConfig(
        fit=fit,
        seed=args.seed,
        races=tuple(args.races),
        threads=args.threads,
        max_train_laps=args.max_train_laps,
    )
    result = run_leave_one_out(table, cfg, progress=not args.no_progress)
    pits = result.pop("pit")
    # The model's PIT values per race and channel: what a calibration is fitted on.
    result["model_pit"] = {r: p["model"] for r, p in pits.items()} if args.keep_pit else None
    if args.plot:
        pooled_pit = {
            m: {
                "lap_time_s": {
                    "n": 1,
                    "pit": [p for r in pits.values() for p in r[m]["lap_time_s"]],
                }
            }
            for m in result["pooled"]
        }
        plot_pit(pooled_pit, args.plot)
    result["verdict"] = verdict(result)
    result["fit"] = {
        "arch": fit.arch,
        "epochs": fit.epochs,
        "patience": fit.patience,
        "members": fit.members,
        "max_train_laps": args.max_train_laps,
    }
    if args.json:
        print(json.dumps(result))
    else:
        _print_leave_one_out(result)
    return 0


def _print_leave_one_out(result: dict) -> None:
    print(f"leave one race out: {len(result['races'])} races, {result['seconds']} s")
    for ch in CHANNELS:
        print(f"\n{ch} (pooled over left-out races)")
        print(
            f"  {'method':<24}{'n':>8}{'NLL':>10}{'CRPS':>11}{'cov50':>7}{'cov80':>7}{'cov90':>7}"
        )
        for name, r in result["pooled"].items():
            s = r.get(ch)
            if s and "crps" not in s:
                cov = f"{s['coverage_50']:>7.2f}{s['coverage_80']:>7.2f}{s['coverage_90']:>7.2f}"
                print(f"  {name:<24}{s['n']:>8}{'':>21}{cov}")
            elif s:
                print(
                    f"  {name:<24}{s['n']:>8}{s['nll']:>10.3f}{s['crps']:>11.4g}"
                    f"{s['coverage_50']:>7.2f}{s['coverage_80']:>7.2f}{s['coverage_90']:>7.2f}"
                )
        print("  per race CRPS (cov80 of the model):")
        for race, res in result["per_race"].items():
            cells = [f"{m}={r[ch]['crps']:.4g}" for m, r in res.items() if r.get(ch, {}).get("n")]
            model = res.get("model", {}).get(ch, {})
            if cells:
                print(f"    {race:<44}{' '.join(cells)}  cov80={model.get('coverage_80', 0):.2f}")
    print("\nverdict:")
    for ch, v in result["verdict"].items():
        print(
            f"  {ch}: beats every baseline in {v['races_won']}/{v['races_scored']} races; "
            f"pooled {100 * v['pooled_gain_over_best']:+.1f} % vs {v['best_baseline']}; "
            f"cov80 {v['pooled_coverage_80']:.2f} (calibrated: "
            f"{v['pooled_calibrated_coverage_80'] or float('nan'):.2f})"
        )


if __name__ == "__main__":
    run_main(main)
