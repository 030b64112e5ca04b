"""Train a learned lap model on the lap store: ``python -m world_model.fit --db DB --out FILE``.

Races (sessions) are split into training and validation sets, never laps: a random lap split
would leak a race's weather, traffic and pace into validation. Early stopping keeps the
weights of the best validation epoch. ``--holdout`` races are left out entirely, for
``world_model.evaluate``; the checkpoint records every split.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from data.entry import run_main
from world_model.checkpoint import save_checkpoint
from world_model.dataset import LapTable, load_table, stint_windows
from world_model.features import build_features
from world_model.learned import LearnedLapModel, Standardiser
from world_model.losses import ensemble_loss
from world_model.networks import (
    ACTIVATIONS,
    MIN_SCALE,
    N_GAUSS,
    N_MIX,
    N_TAIL,
    TAIL_CHANNELS,
    TAIL_LOGIT0,
    GRUEnsemble,
    build_network,
)
from world_model.parametric import ParametricLapParams
from world_model.targets import ENERGY, FUEL, TARGET_NAMES, TEMP, raw_targets


@dataclass(frozen=True)
class FitConfig:
    """Architecture and optimisation settings of one training run."""

    arch: str = "mlp"
    """'mlp' (features of the lap) or 'gru' (recurrent over the stint's laps)."""
    members: int = 5
    """Deep-ensemble members (independent initialisations and bootstrap weights)."""
    hidden: int = 64
    """Units per hidden layer."""
    layers: int = 2
    """Hidden layers (the GRU: its cell plus layers - 1 dense layers)."""
    activation: str = "silu"
    """Hidden activation of the MLP ('silu' or 'relu'; the GRU's dense layers are SiLU)."""
    epochs: int = 40
    """Most passes over the training rows."""
    patience: int = 5
    """Epochs without a better validation loss before stopping."""
    batch_rows: int = 512
    """Rows per step (the GRU: laps, as windows of ``window_laps``)."""
    window_laps: int = 16
    """Laps per recurrent training window."""
    batch_windows: int = 256
    """Windows per step of the recurrent model."""
    telemetry_share: float = 0.125
    """Share of each batch drawn (with replacement) from the units that carry a channel
    besides lap time, so the rare sim-telemetry rows train fuel and wear in every step."""
    withhold_prob: float = 0.5
    """GRU training: share of windows run in the timing regime (sim-only inputs withheld),
    which then train the lap-time head only."""
    reset_prob: float = 0.2
    """Chance per lap that the GRU restarts from its summary state during training, so the
    stateless ``sample()`` (summary state, no history) is trained too."""
    history_dropout: float = 0.1
    """Share of training rows whose inputs from the car's own earlier laps (recent pace,
    previous lap) are marked unknown, so the model also serves callers that do not feed them
    (built scenarios switch them off): "unknown" then means "not fed", not only "just out of
    the pits"."""
    lr: float = 3e-3
    weight_decay: float = 1e-5


MIN_INPUT_ROWS = 100
"""Network inputs carried by fewer training rows are muted (standardised to 0 always)."""
HISTORY_FIELDS = ("recent_pace_pct", "last_lap_time_s", "last_fuel_used", "last_wear")
"""``LapConditions`` fields from the car's own earlier laps."""


def without_history(table: LapTable, share: float, generator: torch.Generator) -> LapTable:
    """``table`` with the own-history inputs (:data:`HISTORY_FIELDS`) unknown (NaN) on a
    random ``share`` of its rows."""
    if share <= 0.0:
        return table
    drop = torch.rand(len(table), generator=generator) < share
    c = table.conditions
    changes = {
        name: torch.where(drop, float("nan"), v)
        for name in HISTORY_FIELDS
        if (v := getattr(c, name)) is not None
    }
    return dataclasses.replace(table, conditions=dataclasses.replace(c, **changes))


def split_races(races: list[str], val_races: int, generator: torch.Generator) -> tuple[list, list]:
    """(training races, validation races): ``val_races`` drawn at random, at least one race
    left for training."""
    races = sorted(races)
    k = min(val_races, max(len(races) - 1, 0))
    order = torch.randperm(len(races), generator=generator).tolist()
    val = sorted(races[i] for i in order[:k])
    return [r for r in races if r not in val], val


def _standardised(model: LearnedLapModel, table: LapTable) -> tuple[torch.Tensor, torch.Tensor]:
    """Network inputs (flag kept: training conditions on it) and standardised targets."""
    x = model.with_flag_effects(True).inputs(table.conditions)
    raw = raw_targets(table.outcomes, table.conditions)
    return x, (raw - model.targets.mean) / model.targets.scale


class Batches:
    """Training and validation batches for either architecture."""

    def __init__(self, model: LearnedLapModel, table: LapTable, cfg: FitConfig) -> None:
        self.model = model
        self.x, self.y = _standardised(model, table)
        self.cfg = cfg
        self.recurrent = isinstance(model.net, GRUEnsemble)
        self.units = (
            torch.as_tensor(stint_windows(table, cfg.window_laps))
            if self.recurrent
            else torch.arange(len(table))
        )

        # Units (rows or windows) carrying any channel besides lap time: sim telemetry.
        rows_rich = (~self.y[:, 1:].isnan()).any(dim=1)
        if self.recurrent:
            rich = (rows_rich[self.units.clamp(min=0)] & (self.units >= 0)).any(dim=1)
        else:
            rich = rows_rich
        self.rich = torch.nonzero(rich).squeeze(1)

    def __len__(self) -> int:
        return int(self.units.shape[0])

    def extra(self, generator: torch.Generator) -> torch.Tensor:
        """Unit indices drawn from the telemetry pool to append to a batch."""
        n = round(self.per_batch * self.cfg.telemetry_share)
        if n == 0 or self.rich.numel() == 0:
            return self.rich[:0]
        return self.rich[torch.randint(self.rich.numel(), (n,), generator=generator)]

    @property
    def per_batch(self) -> int:
        return self.cfg.batch_windows if self.recurrent else self.cfg.batch_rows

    def outputs(
        self, net, units: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(raw outputs ``[K, B, N_OUT]``, standardised targets ``[B, N_TARGETS]``).

        The MLP always runs both passes (full inputs, timing regime) and combines them as
        inference does; the recurrent model, costlier per pass, does so in evaluation and in
        training runs a random share of windows in the timing regime."""
        if not self.recurrent:
            # Exactly as inference: lap time from the timing-regime pass, the rest full.
            x = self.x[units]
            both = torch.cat([x, self.model.timing_regime(x)]).unsqueeze(0)
            out = net(both.expand(net.members, -1, -1))
            b = x.shape[0]
            return self.model.combine(out[:, :b], out[:, b:]), self.y[units]
        idx = units  # [S, W], -1 = padding
        pad = idx < 0
        safe = idx.clamp(min=0)
        x = self.x[safe]
        y = torch.where(pad.unsqueeze(-1), float("nan"), self.y[safe])
        prev = torch.cat([torch.full_like(y[:, :1], float("nan")), y[:, :-1]], dim=1)
        if generator is not None:
            # One pass per step: a random share of windows runs in the timing regime and
            # trains only the lap-time head; the others train every head on full inputs.
            drop = torch.rand(x.shape[0], 1, 1, generator=generator) < self.cfg.withhold_prob
            x = torch.where(drop, self.model.timing_regime(x), x)
            not_lap = torch.arange(y.shape[-1]) > 0
            y = torch.where(drop & not_lap, float("nan"), y)
        prev_mask = (~prev.isnan()).float()
        reset = torch.zeros(idx.shape, dtype=torch.bool)
        reset[:, 0] = True
        if generator is not None:
            reset |= torch.rand(idx.shape, generator=generator) < self.cfg.reset_prob
        prev = torch.nan_to_num(prev)
        raw = net.forward_sequence(x, prev, prev_mask, reset)
        if generator is None:
            timing = net.forward_sequence(self.model.timing_regime(x), prev, prev_mask, reset)
            raw = self.model.combine(raw, timing)
        k = raw.shape[0]
        return raw.reshape(k, -1, raw.shape[-1]), y.reshape(-1, y.shape[-1])


def fit_model(
    train: LapTable,
    val: LapTable | None,
    cfg: FitConfig,
    seed: int,
    *,
    progress: bool = False,
    writer=None,
    info: dict | None = None,
) -> tuple[LearnedLapModel, list[dict]]:
    """Train a model on ``train`` with early stopping on ``val``; returns it and the
    per-epoch history. Scalers are fitted on ``train`` rows only."""
    gen = torch.Generator().manual_seed(seed)
    features, _ = Standardiser.fit(build_features(train.conditions).numpy(), MIN_INPUT_ROWS)
    targets, _ = Standardiser.fit(raw_targets(train.outcomes, train.conditions).numpy())
    net = build_network(
        cfg.arch, features.mean.shape[0], cfg.members, cfg.hidden, cfg.layers, gen, cfg.activation
    )
    model = LearnedLapModel(net, features, targets, info=info)
    data = Batches(model, without_history(train, cfg.history_dropout, gen), cfg)
    val_data = Batches(model, val, cfg) if val is not None and len(val) else None
    # Bootstrap: each member weighs each training unit by a Poisson(1) count.
    boot = torch.poisson(torch.ones(cfg.members, len(data)), generator=gen)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, best_state, stale, history = math.inf, copy.deepcopy(net.state_dict()), 0, []
    bar = tqdm(range(cfg.epochs), desc=f"fit {cfg.arch}", disable=not progress, file=sys.stderr)
    for epoch in bar:
        net.train()
        order = torch.randperm(len(data), generator=gen)
        total, steps = 0.0, 0
        for start in range(0, len(data), data.per_batch):
            units = torch.cat([order[start : start + data.per_batch], data.extra(gen)])
            raw, y = data.outputs(net, data.units[units], gen)
            w = boot[:, units]
            if data.recurrent:
                w = w.unsqueeze(-1).expand(-1, -1, cfg.window_laps).reshape(cfg.members, -1)
            loss, _ = ensemble_loss(raw, y, w)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
            opt.step()
            total += float(loss.detach())
            steps += 1
        record = {"epoch": epoch, "train_loss": total / max(steps, 1)}
        if val_data is not None:
            val_loss, per_channel = evaluate_loss(net, val_data)
            record["val_loss"] = val_loss
            record.update(
                {f"val_nll_{n}": float(v) for n, v in zip(TARGET_NAMES, per_channel, strict=True)}
            )
            if val_loss < best - 1e-4:
                best, best_state, stale = val_loss, copy.deepcopy(net.state_dict()), 0
            else:
                stale += 1
        else:
            best_state = copy.deepcopy(net.state_dict())
        history.append(record)
        if writer is not None:
            for key, value in record.items():
                if key != "epoch":
                    writer.add_scalar(key.replace("_", "/", 1), value, epoch)
        bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k.endswith("loss")})
        if val_data is not None and stale >= cfg.patience:
            break
    net.load_state_dict(best_state)
    observed = (~raw_targets(train.outcomes, train.conditions).isnan()).sum(dim=0)
    targets = fill_unobserved_heads(net, targets, observed)
    model = LearnedLapModel(net.eval(), features, targets, info=info)
    model.info["history"] = history
    model.info["train_rows_per_channel"] = dict(zip(TARGET_NAMES, observed.tolist(), strict=True))
    return model, history


def fill_unobserved_heads(net, targets: Standardiser, observed: torch.Tensor) -> Standardiser:
    """Give the heads of channels no training row carries a defined law instead of their
    untrained output: virtual energy follows the fuel head (both track the power used, as in
    the parametric model) when fuel was observed; any other such channel predicts its
    reference figure with the parametric model's relative noise. Returns the target scaler
    to use (energy takes fuel's)."""
    params = ParametricLapParams()
    noise = {FUEL: params.fuel_noise_sd, ENERGY: params.fuel_noise_sd, TEMP: 0.2}
    mean, scale = targets.mean.clone(), targets.scale.clone()
    out = net.out
    with torch.no_grad():
        for ch in range(1, len(TARGET_NAMES)):
            if observed[ch] > 0:
                continue
            loc_col, scale_col = 3 * N_MIX + ch - 1, 3 * N_MIX + N_GAUSS + ch - 1
            cols = [loc_col, scale_col]
            if ch in TAIL_CHANNELS:
                t = TAIL_CHANNELS.index(ch)
                cols += [TAIL_LOGIT0 + t, TAIL_LOGIT0 + N_TAIL + t]
            if ch == ENERGY and observed[FUEL] > 0:
                src = [3 * N_MIX + FUEL - 1, 3 * N_MIX + N_GAUSS + FUEL - 1]
                f = TAIL_CHANNELS.index(FUEL)
                src += [TAIL_LOGIT0 + f, TAIL_LOGIT0 + N_TAIL + f]
                out.weight[..., cols] = out.weight[..., src]
                out.bias[..., cols] = out.bias[..., src]
                mean[ch], scale[ch] = mean[FUEL], scale[FUEL]
                continue
            sd = noise.get(ch, params.wear_noise_sd)
            out.weight[..., cols] = 0.0
            out.bias[..., loc_col] = 0.0
            # softplus(b) + MIN_SCALE = sd, with the channel's scaler at mean 0, scale 1
            out.bias[..., scale_col] = math.log(math.expm1(max(sd - MIN_SCALE, 1e-6)))
            if ch in TAIL_CHANNELS:  # no tail: a Gaussian of the parametric noise
                out.bias[..., cols[2]] = -30.0
            mean[ch], scale[ch] = 0.0, 1.0
    return Standardiser(mean, scale)


@torch.no_grad()
def evaluate_loss(net, data: Batches) -> tuple[float, torch.Tensor]:
    """Validation loss (no bootstrap weights, no random resets) and per-channel NLL."""
    net.eval()
    sums = torch.zeros(len(TARGET_NAMES))
    counts = torch.zeros(len(TARGET_NAMES))
    for start in range(0, len(data), data.per_batch * 8):
        units = data.units[start : start + data.per_batch * 8]
        raw, y = data.outputs(net, units, None)
        _, per_channel = ensemble_loss(raw, y)
        n = (~y.isnan()).sum(dim=0).float()
        sums += per_channel * n
        counts += n
    per_channel = sums / counts.clamp(min=1)
    observed = counts > 0
    return float(per_channel[observed].sum()), per_channel


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m world_model.fit",
        description="Train a learned lap model (deep ensemble, MLP or GRU) on a lap store and "
        "write a self-contained checkpoint.",
    )
    p.add_argument("--db", required=True, help="lap store (SQLite, data/schema.sql)")
    p.add_argument("--out", required=True, help="checkpoint file to write (atomically)")
    p.add_argument("--arch", choices=("mlp", "gru"), default="mlp", help="network architecture")
    p.add_argument("--epochs", type=int, default=FitConfig.epochs, help="most training epochs")
    p.add_argument(
        "--patience", type=int, default=FitConfig.patience, help="early-stopping patience [epochs]"
    )
    p.add_argument("--members", type=int, default=FitConfig.members, help="ensemble members")
    p.add_argument("--hidden", type=int, default=FitConfig.hidden, help="units per hidden layer")
    p.add_argument("--layers", type=int, default=FitConfig.layers, help="hidden layers")
    p.add_argument(
        "--activation",
        choices=ACTIVATIONS,
        default=FitConfig.activation,
        help="hidden activation of the MLP (relu samples faster; the GRU uses silu)",
    )
    p.add_argument("--lr", type=float, default=FitConfig.lr, help="AdamW learning rate")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of initialisation, bootstrap, split and batches"
    )
    p.add_argument(
        "--holdout",
        action="append",
        default=[],
        metavar="RACE",
        help="session name left out of training and validation (for evaluate); repeatable",
    )
    p.add_argument("--val-races", type=int, default=1, help="races drawn at random for validation")
    p.add_argument(
        "--val",
        action="append",
        default=[],
        metavar="RACE",
        help="session name used for validation (early stopping) instead of a random draw; "
        "repeatable",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="intra-op threads (default 1: on a busy 2-core machine more threads spin-wait "
        "on each other and run many times slower)",
    )
    p.add_argument(
        "--calibration",
        default=None,
        metavar="JSON",
        help="store the conformal interval calibration of a leave-one-out run (the JSON of "
        "python -m world_model.evaluate --leave-one-out --json) with the model",
    )
    p.add_argument("--logdir", default=None, help="TensorBoard log folder (default: none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    return p


def _read_calibration(path: str) -> dict:
    """The ``calibration`` object of a leave-one-out JSON (channel -> level -> PIT bounds)."""
    try:
        with open(path, encoding="utf-8") as f:
            return dict(json.load(f)["calibration"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(
            f"error: {path}: expected the JSON of evaluate --leave-one-out ({exc})"
        ) from exc


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch.manual_seed(args.seed)  # entry point: nothing below draws from it, set for safety
    torch.set_num_threads(args.threads)
    started = time.time()
    calibration = _read_calibration(args.calibration) if args.calibration else None
    try:
        table = load_table(args.db)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    unknown = sorted(set(args.holdout + args.val) - set(table.races))
    if unknown:
        print(
            f"error: {args.db}: --holdout / --val races not in the lap store: {unknown}",
            file=sys.stderr,
        )
        return 2
    pool = [r for r in table.races if r not in args.holdout]
    if not pool:
        print(f"error: {args.db}: no races left to train on", file=sys.stderr)
        return 2
    if args.val:
        val_races = sorted(args.val)
        train_races = [r for r in pool if r not in val_races]
    else:
        train_races, val_races = split_races(
            pool, args.val_races, torch.Generator().manual_seed(args.seed)
        )
    cfg = FitConfig(
        arch=args.arch,
        members=args.members,
        hidden=args.hidden,
        layers=args.layers,
        activation=args.activation,
        epochs=args.epochs,
        patience=args.patience,
        lr=args.lr,
    )
    info = {
        "db": str(Path(args.db).resolve()),
        "command": "python -m world_model.fit "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "seed": args.seed,
        "config": asdict(cfg),
        "train_races": train_races,
        "val_races": val_races,
        "holdout_races": sorted(args.holdout),
    }
    writer = None
    if args.logdir:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(args.logdir)
    train = table.select(np.isin(table.race, train_races))
    val = table.select(np.isin(table.race, val_races)) if val_races else None
    model, history = fit_model(
        train, val, cfg, args.seed, progress=not args.no_progress, writer=writer, info=info
    )
    if writer is not None:
        writer.close()
    if calibration:
        model.info["interval_calibration"] = calibration
    model.info["train_rows"] = len(train)
    model.info["fit_seconds"] = round(time.time() - started, 1)
    save_checkpoint(model, args.out)
    summary = {
        "out": str(args.out),
        "arch": cfg.arch,
        "epochs_run": len(history),
        "best_val_loss": min((h.get("val_loss", math.inf) for h in history), default=None),
        "train_rows": len(train),
        "train_races": train_races,
        "val_races": val_races,
        "holdout_races": sorted(args.holdout),
        "seconds": model.info["fit_seconds"],
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"wrote {args.out}: {cfg.arch}, {len(history)} epochs, {summary['seconds']} s",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    run_main(main)
