"""Scores of lap models and baselines on laps: NLL, CRPS and interval coverage per channel.

Shared by ``python -m world_model.evaluate`` (held-out races) and
:mod:`world_model.leave_one_out` (every race left out in turn).
"""

from __future__ import annotations

import torch

from world_model.baselines import Baseline
from world_model.dataset import LapTable
from world_model.distributions import Mixture
from world_model.fit import Batches, FitConfig
from world_model.learned import LearnedLapModel
from world_model.networks import GRUEnsemble, decode
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
