"""Synthetic races from a lap model, written in the lap-store schema.

``python -m world_model.generate --model default --cars 20 --duration-s 21600 --out SYN.sqlite``
rolls a lap model forward for one car or a field (every car's lap in one batched ``sample``
call per lap), with a simple stop rule (pit when the fuel left would not cover the next lap
plus a reserve; change tyres when the most worn wheel is below ``--tyre-change-tread``), and
writes laps, cars, pit stops and the session through :mod:`data.store`, so synthetic and real
races are compared with the same tools. A JSON spec of the run is written beside the output
and recorded as the rows' source (re-running with the same output replaces the run).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from data.entry import run_main
from data.records import ReadResult, SessionRecord
from data.store import open_store, write_result
from world_model.interface import (
    N_WHEELS,
    Compound,
    FlagState,
    LapConditions,
    LapModel,
    PaceMode,
    update_recent_pace,
)
from world_model.loading import load


@dataclass(frozen=True)
class FieldSpec:
    """The synthetic race: field, references, conditions and the stop rule."""

    cars: int = 1
    laps: int | None = None
    duration_s: float | None = 3600.0
    ref_lap_time_s: float = 210.0
    pace_spread: float = 0.01
    """Reference pace of the slowest car relative to the fastest, fraction."""
    ref_fuel_per_lap: float = 0.07
    ref_energy_per_lap: float = 0.0
    ref_wear_per_lap: float = 0.02
    compound: int = int(Compound.MEDIUM)
    pace_mode: int = int(PaceMode.NORMAL)
    track_temp_c: float = 30.0
    wetness: float = 0.0
    start_hour: float = 15.0
    pit_time_s: float = 60.0
    fuel_reserve_laps: float = 0.5
    tyre_change_tread: float = 0.5
    car_class: str = "SYN"


def _night(hour: torch.Tensor) -> torch.Tensor:
    h = torch.remainder(hour, 24.0)
    return torch.where(h < 12.0, (6.5 - h).clamp(0.0, 1.0), (h - 20.5).clamp(0.0, 1.0))


def simulate_field(
    model: LapModel, spec: FieldSpec, generator: torch.Generator, member: int
) -> list[dict]:
    """Lap rows (lap-store columns plus ``car``) of one synthetic race."""
    c = spec.cars
    ref_lap = spec.ref_lap_time_s * (1.0 + spec.pace_spread * torch.linspace(0, 1, c))
    fuel = torch.ones(c)
    energy = torch.ones(c)
    tread = torch.ones(c, N_WHEELS)
    tyre_age = torch.zeros(c)
    tyre_temp = torch.full((c,), spec.track_temp_c + 40.0)
    race_time = torch.zeros(c)
    stint_start = torch.zeros(c)
    out_lap = torch.zeros(c)
    pit_time = torch.zeros(c)
    active = torch.ones(c, dtype=torch.bool)
    recent = torch.full((c,), float("nan"))  # as the engine feeds it
    last = [torch.full((c,), float("nan")) for _ in range(3)]  # previous lap: time, fuel, wear
    lap = 0
    rows: list[dict] = []
    full = lambda v: torch.full((c,), float(v))  # noqa: E731
    members = torch.full((c,), member, dtype=torch.int64)
    while active.any():
        lap += 1
        # Traffic: other cars crossing the line in the 5 s before this car.
        gap = race_time.unsqueeze(0) - race_time.unsqueeze(1)  # [i, j] = t_j - t_i
        traffic = ((gap < 0) & (gap >= -5.0) & active.unsqueeze(0)).sum(dim=1).float()
        cond = LapConditions(
            ref_lap_time_s=ref_lap,
            ref_fuel_per_lap=full(spec.ref_fuel_per_lap),
            ref_energy_per_lap=full(spec.ref_energy_per_lap),
            ref_wear_per_lap=full(spec.ref_wear_per_lap),
            fuel=fuel,
            energy=energy,
            tread=tread,
            tyre_age_laps=tyre_age,
            compound=torch.full((c,), spec.compound, dtype=torch.int64),
            tyre_temp_c=tyre_temp,
            damage=torch.zeros(c),
            stint_time_s=race_time - stint_start,
            pace_mode=torch.full((c,), spec.pace_mode, dtype=torch.int64),
            class_index=torch.zeros(c, dtype=torch.int64),
            driver_skill=torch.zeros(c),
            flag=torch.full((c,), int(FlagState.GREEN), dtype=torch.int64),
            wetness=full(spec.wetness),
            track_temp_c=full(spec.track_temp_c),
            night=_night(spec.start_hour + race_time / 3600.0),
            traffic=traffic,
            out_lap=out_lap,
            recent_pace_pct=recent,
            # an out-lap's previous lap ended in the pits: unknown, as in the lap store
            last_lap_time_s=torch.where(out_lap > 0, float("nan"), last[0]),
            last_fuel_used=torch.where(out_lap > 0, float("nan"), last[1]),
            last_wear=torch.where(out_lap > 0, float("nan"), last[2]),
        )
        o = model.sample(cond, generator, members)
        lap_time = o.lap_time_s + pit_time
        fuel_end = (fuel - o.fuel_used).clamp(min=0.0)
        energy_end = (energy - o.energy_used).clamp(min=0.0)
        tread_end = (tread - o.wear).clamp(min=0.0)
        end_time = race_time + lap_time
        pit_in = fuel_end < spec.ref_fuel_per_lap * (1.0 + spec.fuel_reserve_laps)
        per_car = {
            "lap_time_s": lap_time,
            "race_time_s": end_time,
            "pit_in": pit_in,
            "out_lap": out_lap,
            "pit_time_s": pit_time,
            "tyre_age_laps": tyre_age,
            "fuel_start": fuel,
            "fuel_end": fuel_end,
            "energy_start": energy,
            "energy_end": energy_end,
            "tread_end": tread_end,
            "tyre_temp_c": o.tyre_temp_c,
        }
        rows += _lap_rows(spec, lap, active, per_car)
        recent = update_recent_pace(recent, o.lap_time_s, ref_lap)
        recent = torch.where(out_lap > 0, cond.recent_pace_pct, recent)
        last = [
            torch.where(out_lap > 0, float("nan"), v)
            for v in (o.lap_time_s, o.fuel_used, o.wear.mean(dim=1))
        ]
        # Stops: refuel to full; new tyres when the most worn wheel is below the threshold.
        change = pit_in & (tread_end.min(dim=1).values < spec.tyre_change_tread)
        fuel = torch.where(pit_in, 1.0, fuel_end)
        energy = torch.where(pit_in, 1.0, energy_end)
        tread = torch.where(change.unsqueeze(1), 1.0, tread_end)
        tyre_age = torch.where(change, 0.0, tyre_age + 1.0)
        tyre_temp = torch.where(change, spec.track_temp_c + 10.0, o.tyre_temp_c)
        out_lap = pit_in.float()
        pit_time = torch.where(pit_in, spec.pit_time_s, 0.0)
        stint_start = torch.where(pit_in, end_time, stint_start)
        race_time = torch.where(active, end_time, race_time)
        if spec.laps is not None:
            active &= lap < spec.laps
        if spec.duration_s is not None:
            active &= race_time < spec.duration_s
    _positions(rows)
    return rows


def _lap_rows(
    spec: FieldSpec, lap: int, active: torch.Tensor, per_car: dict[str, torch.Tensor]
) -> list[dict]:
    """Lap-store rows of the active cars for one lap from per-car tensors."""
    v = {k: t.tolist() for k, t in per_car.items()}
    energy = spec.ref_energy_per_lap > 0
    rows = []
    for i in torch.nonzero(active).squeeze(1).tolist():
        out = v["out_lap"][i] > 0
        tread = v["tread_end"][i]
        rows.append(
            {
                "car": str(i + 1),
                "lap": lap,
                "lap_time_s": v["lap_time_s"][i],
                "timed": 1,
                "race_time_s": v["race_time_s"][i],
                "pit_in": int(v["pit_in"][i]),
                "pit_out": int(out),
                "pit_time_s": v["pit_time_s"][i] if out else None,
                "compound": spec.compound,
                "compound_name": Compound(spec.compound).name.lower(),
                "tyre_age_laps": int(v["tyre_age_laps"][i]),
                "fuel_start": v["fuel_start"][i],
                "fuel_end": v["fuel_end"][i],
                "energy_start": v["energy_start"][i] if energy else None,
                "energy_end": v["energy_end"][i] if energy else None,
                **{f"tread_{w}": tread[j] for j, w in enumerate(("fl", "fr", "rl", "rr"))},
                "tyre_temp_c": v["tyre_temp_c"][i],
                "track_temp_c": spec.track_temp_c,
                "wetness": spec.wetness,
                "flag": int(FlagState.GREEN),
                "damage": 0.0,
                "driver_change": 0,
            }
        )
    return rows


def _positions(rows: list[dict]) -> None:
    """Position and class position at each line crossing: rank among cars completing the
    same lap, by crossing time (one class in a synthetic field)."""
    by_lap: dict[int, list[dict]] = {}
    for r in rows:
        by_lap.setdefault(r["lap"], []).append(r)
    for laps in by_lap.values():
        for pos, r in enumerate(sorted(laps, key=lambda r: r["race_time_s"]), start=1):
            r["position"] = pos
            r["class_position"] = pos


def _parser() -> argparse.ArgumentParser:
    d = FieldSpec()
    p = argparse.ArgumentParser(
        prog="python -m world_model.generate",
        description="Roll a lap model forward for a car or a field and write the laps to a "
        "lap store (data/schema.sql).",
    )
    p.add_argument("--model", default="default", help="'default', 'parametric' or a checkpoint")
    p.add_argument("--out", required=True, help="lap store to write (created if absent)")
    p.add_argument("--name", default="synthetic", help="session name")
    p.add_argument("--cars", type=int, default=d.cars, help="cars in the field")
    p.add_argument("--laps", type=int, default=None, help="race length in laps")
    p.add_argument("--duration-s", type=float, default=d.duration_s, help="race length [s]")
    p.add_argument(
        "--ref-lap-time-s",
        type=float,
        default=d.ref_lap_time_s,
        help="fastest car's reference lap [s]",
    )
    p.add_argument(
        "--pace-spread",
        type=float,
        default=d.pace_spread,
        help="slowest car's reference over the fastest's, fraction",
    )
    p.add_argument(
        "--ref-fuel-per-lap",
        type=float,
        default=d.ref_fuel_per_lap,
        help="fuel per lap, fraction of tank",
    )
    p.add_argument(
        "--ref-energy-per-lap",
        type=float,
        default=d.ref_energy_per_lap,
        help="virtual energy per lap, fraction (0: none)",
    )
    p.add_argument(
        "--ref-wear-per-lap",
        type=float,
        default=d.ref_wear_per_lap,
        help="mean tread loss per lap, fraction",
    )
    p.add_argument(
        "--compound",
        choices=[c.name.lower() for c in Compound],
        default="medium",
        help="tyre compound",
    )
    p.add_argument(
        "--pace-mode",
        choices=[m.name.lower() for m in PaceMode],
        default="normal",
        help="pace mode for every lap",
    )
    p.add_argument(
        "--track-temp-c", type=float, default=d.track_temp_c, help="track temperature [°C]"
    )
    p.add_argument("--wetness", type=float, default=d.wetness, help="track wetness 0..1")
    p.add_argument(
        "--start-hour", type=float, default=d.start_hour, help="local time at the start [h]"
    )
    p.add_argument(
        "--pit-time-s", type=float, default=d.pit_time_s, help="time in the pit lane per stop [s]"
    )
    p.add_argument(
        "--fuel-reserve-laps",
        type=float,
        default=d.fuel_reserve_laps,
        help="stop when fuel would not cover the next lap plus this many laps",
    )
    p.add_argument(
        "--tyre-change-tread",
        type=float,
        default=d.tyre_change_tread,
        help="change tyres at a stop when the most worn wheel has less tread than this",
    )
    p.add_argument(
        "--member",
        type=int,
        default=None,
        help="ensemble member for the whole race (default: drawn from the seed)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the lap noise")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cars < 1 or (args.laps is None and args.duration_s is None):
        print("error: need --cars >= 1 and --laps or --duration-s", file=sys.stderr)
        return 2
    try:
        model = load(args.model)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spec = FieldSpec(
        cars=args.cars,
        laps=args.laps,
        duration_s=None if args.laps is not None else args.duration_s,
        ref_lap_time_s=args.ref_lap_time_s,
        pace_spread=args.pace_spread,
        ref_fuel_per_lap=args.ref_fuel_per_lap,
        ref_energy_per_lap=args.ref_energy_per_lap,
        ref_wear_per_lap=args.ref_wear_per_lap,
        compound=int(Compound[args.compound.upper()]),
        pace_mode=int(PaceMode[args.pace_mode.upper()]),
        track_temp_c=args.track_temp_c,
        wetness=args.wetness,
        start_hour=args.start_hour,
        pit_time_s=args.pit_time_s,
        fuel_reserve_laps=args.fuel_reserve_laps,
        tyre_change_tread=args.tyre_change_tread,
    )
    gen = torch.Generator().manual_seed(args.seed)
    n_members = int(getattr(model, "members", 1))
    member = (
        args.member
        if args.member is not None
        else int(torch.randint(n_members, (1,), generator=gen))
    )
    rows = simulate_field(model, spec, gen, member)
    session = SessionRecord(
        name=args.name,
        series="synthetic",
        track="synthetic",
        session_type="race",
        start_hour_of_day=spec.start_hour,
        duration_s=spec.duration_s,
        laps_scheduled=spec.laps,
    )
    for i in range(spec.cars):
        car = session.car(str(i + 1))
        car.car_class = spec.car_class
        car.team = "synthetic"
        car.laps_completed = sum(1 for r in rows if r["car"] == str(i + 1))
        car.finish_status = "finished"
    session.laps = rows
    session.pit_stops = [
        {
            "car": r["car"],
            "lap": r["lap"],
            "race_time_s": r["race_time_s"],
            "pit_time_s": spec.pit_time_s,
            "refuel": 1,
        }
        for r in rows
        if r["pit_in"]
    ]
    out = Path(args.out)
    spec_path = out.with_name(f"{out.name}.{args.name}.generate.json")
    spec_path.write_text(
        json.dumps(
            {"model": args.model, "member": member, "seed": args.seed, **spec.__dict__}, indent=1
        )
    )
    conn = open_store(out)
    try:
        write_result(conn, spec_path, ReadResult(reader="world_model.generate", sessions=[session]))
    finally:
        conn.close()
    summary = {
        "out": str(out),
        "session": args.name,
        "cars": spec.cars,
        "laps": len(rows),
        "pit_stops": len(session.pit_stops),
        "member": member,
        "model": args.model,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"wrote {len(rows)} laps of {spec.cars} cars to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
