"""A synthetic LMU / rF2 shared-memory recording of ``test_race``'s cars, for tests and the
README's ``stintsim advise --follow`` example (the real recordings in ``../shared/data/lmu`` are
shorter than a lap, so they hold no line crossing to advise at).

:func:`write_recording` writes a JSON list of ``{record_id, timestamp, data}`` records as the
game's shared memory gives them, every ``SAMPLE_S`` of session time: a ``ScoringInfoV01``
with cars 1 (the player, class ``Hyper``, driver A. Two), 2 (``Hyper``) and 91 (``GT3``, a
lap down) and the player's ``TelemInfoV01`` (fuel falling 10 % of the tank a lap from 90 %,
tread 1 % a lap, mediums). Laps take ``LAP_S``; the green flag falls at session time
``GREEN_ET``. With ``stop_after`` the player stops after that lap: in the pit lane for one
sample, out with a full tank and new tyres (the stop costs no time: a fixture, not a race).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

LAP_S = 100.0
SAMPLE_S = 20.0
GREEN_ET = 50.0
"""Session clock at the green flag [s]."""


def _vehicle(number: str, cls: str, driver: str, laps: int, place: int, gap: float) -> dict:
    return {
        "mID": int(number), "mVehicleName": f"Team 2025 #{number}:LM", "mVehicleClass": cls,
        "mDriverName": driver, "mIsPlayer": number == "1", "mTotalLaps": laps, "mPlace": place,
        "mLapsBehindLeader": 0, "mTimeBehindLeader": gap, "mInPits": False, "mNumPitstops": 0,
        "mFinishStatus": 0, "mLapStartET": GREEN_ET + laps * LAP_S, "mLastLapTime": LAP_S,
    }  # fmt: skip


def _telemetry(t: float, laps: int, fuel: float, tread: float) -> dict[str, Any]:
    return {
        "Type": "TelemInfoV01",
        "mID": 1,
        "mVehicleName": "Team 2025 #1:LM",
        "mElapsedTime": t,
        "mLapNumber": laps,
        "mFuel": 90.0 * fuel,
        "mFuelCapacity": 90.0,
        "mFrontTireCompoundName": "Medium",
        "mWheel": [{"mWear": tread} for _ in range(4)],
        "mDentSeverity": [0] * 8,
    }


def write_recording(path: Path, laps: int = 3, stop_after: int | None = None) -> list[float]:
    """Write the recording (``laps`` laps of the player); the player's fuel level [tank] in
    the last telemetry record before each of its line crossings, in order."""
    records: list[dict[str, Any]] = []
    fuels: list[float] = []
    t = GREEN_ET - SAMPLE_S
    refill = (0.0, 0.0)  # (race time of the refill, fuel level then)
    stops = 0
    while t <= GREEN_ET + laps * LAP_S + 1e-9:
        race_s = max(0.0, t - GREEN_ET)
        done = int((race_s + 1e-9) // LAP_S)
        in_pits = stop_after is not None and abs(race_s - stop_after * LAP_S - SAMPLE_S) < 1e-9
        if stop_after is not None and race_s >= stop_after * LAP_S + 2 * SAMPLE_S and not stops:
            stops, refill = 1, (race_s, 1.0)
        player = _vehicle("1", "Hyper", "A. Two", done, 1, 0.0)
        player.update(mInPits=in_pits, mNumPitstops=stops)
        cars = [
            player,
            _vehicle("2", "Hyper", "B. One", done, 2, 1.5),
            _vehicle("91", "GT3", "D. One", max(0, done - 1), 3, 0.0),
        ]
        records.append(
            {
                "Type": "ScoringInfoV01",
                "mCurrentET": t,
                "mGamePhase": 5 if t >= GREEN_ET else 3,
                "mSession": 10,
                "mTrackName": "test_ring",
                "mNumVehicles": 3,
                "mEndET": GREEN_ET + 1800.0,
                "mVehicles": cars,
            }
        )
        since = race_s - refill[0]
        fuel = (0.9 if not stops else refill[1]) - 0.1 * since / LAP_S
        tread = 1.0 - 0.01 * since / LAP_S
        if done >= 1 and abs(race_s - done * LAP_S) < 1e-9:
            fuels.append(round(float(records[-2]["mFuel"]) / 90.0, 4))
        records.append(_telemetry(t, done, fuel, tread))
        t += SAMPLE_S
    wrapped = [{"record_id": i, "timestamp": None, "data": r} for i, r in enumerate(records)]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(wrapped), encoding="utf-8")
    os.replace(tmp, path)  # atomic: a reader never sees half a recording
    return fuels


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.sharedmem_fixture OUT.json``: write the synthetic recording."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m bench.sharedmem_fixture",
        description="Write a synthetic LMU shared-memory recording of test_race's cars 1, 2 "
        "and 91 (a sample for stintsim advise --follow).",
    )
    parser.add_argument("out", type=Path, help="the .json file to write (replaced if present)")
    parser.add_argument("--laps", type=int, default=5, help="laps of the player (default 5)")
    parser.add_argument(
        "--stop-after",
        type=int,
        default=3,
        help="the lap after which the player stops for fuel and tyres (default 3; 0: none)",
    )
    args = parser.parse_args(argv)
    if args.laps < 1:
        print("error: --laps must be >= 1", file=sys.stderr)
        return 2
    write_recording(args.out, args.laps, args.stop_after or None)
    print(f"wrote {args.out}: {args.laps} laps of car 1")
    return 0


if __name__ == "__main__":
    from data.entry import run_main

    run_main(main)
