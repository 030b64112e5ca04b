"""Benchmark of incident sampling: car-hours per second for the engine's call pattern.

A 24 h race of 1,024 replicas x 62 cars (three classes) at the engine's window size: every
window ``car_incidents`` over the whole field and ``neutralisation`` per replica (both draw
fixed-shape random numbers every call, as the engine needs); once per race ``draw_params``
and the ``weather`` track. Exposure varies with race time, night and a wet spell so every
term of the hazards is live. Figures: car-hours simulated per wall second and per CPU second
(on a machine shared with other work wall-clock rates understate it), milliseconds per
window, and the events' share of an engine race at its 500k car-laps/s target.

    python -m bench.events --json
    python -m bench.events --replicas 256 --hours 6 --window-s 30
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from data.entry import run_main

ENGINE_TARGET_CAR_LAPS_PER_S = 500_000.0
LE_MANS_LAPS = 380


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.events",
        description="Incident, neutralisation and weather sampling speed (car-hours per second).",
    )
    p.add_argument("--replicas", type=int, default=1024, help="replicas in one batch (1024)")
    p.add_argument("--cars", type=int, default=62, help="cars per replica (62)")
    p.add_argument("--hours", type=float, default=24.0, help="race length [h] (24)")
    p.add_argument("--window-s", type=float, default=30.0, help="clock window [s] (30)")
    p.add_argument("--weather-step-s", type=float, default=60.0, help="weather grid [s] (60)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1, as the engine)")
    p.add_argument("--model", default="default", help="'default', 'prior' or a posterior file")
    p.add_argument("--seed", type=int, default=0, help="generator seed (0)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    import events
    from events.interface import CarExposure

    if args.model == "default":
        model = events.load_default(["HYPERCAR", "LMP2", "LMGT3"], 13626.0)
    elif args.model == "prior":
        model = events.prior_model(["HYPERCAR", "LMP2", "LMGT3"], 13626.0)
    else:
        model = events.load_model(args.model, ["HYPERCAR", "LMP2", "LMGT3"], 13626.0)
    r, c = args.replicas, args.cars
    g = torch.Generator().manual_seed(args.seed)
    windows = int(args.hours * 3600.0 / args.window_s)
    shape = (r, c)
    traffic = torch.rand(shape, generator=g) * 3.0
    other = traffic * torch.rand(shape, generator=g)
    pace = torch.randint(0, 3, shape, generator=g)
    skill = torch.randn(shape, generator=g) * 0.5
    class_index = torch.arange(c).remainder(3).expand(shape).contiguous()
    dt = torch.full(shape, args.window_s)
    ones = torch.ones(shape)

    t0, c0 = time.perf_counter(), time.process_time()
    params = model.draw_params(r, g)
    model.weather(params, 16.0, args.hours * 3600.0, args.weather_step_s, g)
    per_race_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    incidents = 0
    for k in range(windows):
        t = (k + 1) * args.window_s
        hour = (16.0 + t / 3600.0) % 24.0
        exposure = CarExposure(
            dt_s=dt,
            race_time_s=ones * t,
            traffic=traffic,
            faster_class_traffic=other,
            pace_mode=pace,
            tread_min=ones * (1.0 - (k % 40) / 50.0),
            class_index=class_index,
            driver_skill=skill,
            wetness=ones * (0.6 if 14.0 <= t / 3600.0 < 17.0 else 0.0),
            night=ones * (1.0 if hour >= 22.0 or hour < 5.5 else 0.0),
        )
        inc = model.car_incidents(params, exposure, g)
        severity = torch.where(inc.failure | inc.puncture, 1.0, inc.damage).amax(-1)
        model.neutralisation(params, severity, g)
        incidents += int((inc.contact | inc.puncture | inc.failure).sum())
    loop_s = time.perf_counter() - t1
    wall = per_race_s + loop_s
    cpu = time.process_time() - c0
    car_hours = r * c * args.hours
    engine_s = r * c * LE_MANS_LAPS * (args.hours / 24.0) / ENGINE_TARGET_CAR_LAPS_PER_S
    out = {
        "bench": "events",
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "model": args.model,
        "replicas": r,
        "cars": c,
        "hours": args.hours,
        "window_s": args.window_s,
        "windows": windows,
        "incidents": incidents,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "per_race_setup_s": round(per_race_s, 3),
        "ms_per_window": round(1e3 * loop_s / windows, 3),
        "car_hours_per_s": round(car_hours / wall),
        "car_hours_per_cpu_s": round(car_hours / max(cpu, 1e-9)),
        "engine_target_race_s": round(engine_s, 1),
        "share_of_engine_race": round(wall / engine_s, 3),
    }
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:<22} {value}")
    return 0


if __name__ == "__main__":
    run_main(main)
