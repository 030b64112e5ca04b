"""Benchmark of ingestion: timing-CSV rows per second and LMU DuckDB samples per second.

Timing: every Al Kamel lap analysis under ``--data`` (default ``../shared/data`` beside the
repository; a generated 24-hour, 62-car file when absent) is read and written to a fresh lap
store; the figure is lap rows per second of the whole ingest (detect, read, one transaction).
LMU: a one-hour session at the real channel rates is generated with ``bench.lmu_fixture`` and
read into laps; the figure is continuous samples (rows x values) per second of the read.
Targets: a 24-hour timing file and a one-hour LMU session each in under 2 s.

    python bench/ingest.py --json
    python bench/ingest.py --lmu-hours 0.25 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from data.entry import run_main

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _synthetic_24h(path: Path) -> Path:
    """A 24-hour WEC-style lap analysis: 62 cars, about 3:45 a lap, pit every 11 laps."""
    header = (
        "NUMBER; DRIVER_NUMBER; LAP_NUMBER; LAP_TIME; LAP_IMPROVEMENT; CROSSING_FINISH_LINE_IN_PIT;"
        " S1; S1_IMPROVEMENT; S2; S2_IMPROVEMENT; S3; S3_IMPROVEMENT; KPH; ELAPSED; HOUR;S1_LARGE;"
        "S2_LARGE;S3_LARGE;TOP_SPEED;DRIVER_NAME;PIT_TIME;CLASS;GROUP;TEAM;MANUFACTURER;FLAG_AT_FL;"
        "S1_SECONDS;S2_SECONDS;S3_SECONDS;"
    )

    def clock(s: float) -> str:
        h, rem = divmod(s, 3600.0)
        m, sec = divmod(rem, 60.0)
        return f"{int(h)}:{int(m):02d}:{sec:06.3f}" if h else f"{int(m)}:{sec:06.3f}"

    lines = [header]
    for car in range(62):
        elapsed, lap, base = 0.0, 0, 215.0 + car * 0.4
        while elapsed < 86400.0:
            lap += 1
            t = base + (70.0 if lap % 11 == 1 and lap > 1 else 0.0)
            elapsed += t
            s1, s2 = round(0.3 * t, 3), round(0.4 * t, 3)
            s3 = round(t - s1 - s2, 3)
            flag = "FF" if elapsed >= 86400.0 else "GF"
            pit_time = clock(70.0) if lap % 11 == 1 and lap > 1 else ""
            lines.append(
                ";".join([
                    f"{car + 1:03d}", str(1 + lap // 33 % 3), str(lap), clock(t), "0",
                    "B" if lap % 11 == 0 else "", clock(s1), "0", clock(s2), "0", clock(s3), "0",
                    "210.0", clock(elapsed), clock((57600.0 + elapsed) % 86400.0), clock(s1),
                    clock(s2), clock(s3), "330.0", f"Driver {car}", pit_time, "HYPERCAR", "",
                    f"Team {car}", "Maker", flag, f"{s1:.3f}", f"{s2:.3f}", f"{s3:.3f}",
                ]) + ";"
            )  # fmt: skip
    path.write_text("\ufeff" + "\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


def _timing_files(data: Path, tmp: Path) -> list[Path]:
    from data.detect import detect_kind

    files = (
        sorted(p for d in ("wec", "imsa") for p in (data / d).glob("*.csv"))
        if data.is_dir()
        else []
    )
    files = [p for p in files if detect_kind(p) == "alkamel_csv"]
    return files or [_synthetic_24h(tmp / "synthetic_24h_race_analysis.csv")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/ingest.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO.parent / "shared" / "data",
        help="folder with wec/ and imsa/ timing CSVs (default ../shared/data)",
    )
    parser.add_argument(
        "--lmu-hours", type=float, default=1.0, help="length of the LMU session [h]"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per figure (the median is kept)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)

    from bench.lmu_fixture import write_lmu_session
    from data.ingest import read_file
    from data.readers.lmu_duckdb import read_lmu_duckdb
    from data.store import open_store, write_result

    out: dict[str, object] = {"cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        timing = []
        for path in _timing_files(args.data, tmp):
            runs = []
            for k in range(args.repeat):
                db = tmp / f"t{k}.sqlite"
                conn = open_store(db)
                start = time.perf_counter()
                result = read_file(path)
                write_result(conn, path, result)
                runs.append(time.perf_counter() - start)
                conn.close()
                db.unlink()
            rows = sum(len(s.laps) for s in result.sessions)
            sec = statistics.median(runs)
            timing.append({"file": path.name, "lap_rows": rows, "seconds": round(sec, 3),
                           "rows_per_s": round(rows / sec)})  # fmt: skip
            print(f"timing {path.name}: {rows} laps in {sec:.3f} s ({rows / sec:,.0f} rows/s)",
                  file=sys.stderr)  # fmt: skip
        out["timing"] = timing
        out["timing_rows_per_s"] = round(
            sum(t["lap_rows"] for t in timing) / sum(t["seconds"] for t in timing)
        )
        out["timing_max_file_s"] = max(t["seconds"] for t in timing)

        start = time.perf_counter()
        truth = write_lmu_session(tmp / "bench.duckdb", duration_s=3600.0 * args.lmu_hours)
        gen_s = time.perf_counter() - start
        runs = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            result = read_lmu_duckdb(truth.path)
            runs.append(time.perf_counter() - start)
        sec = statistics.median(runs)
        laps = len(result.sessions[0].laps)
        out["lmu"] = {"session_h": args.lmu_hours, "samples": truth.samples, "laps": laps,
                      "read_s": round(sec, 3), "samples_per_s": round(truth.samples / sec),
                      "generate_s": round(gen_s, 3)}  # fmt: skip
        print(
            f"lmu {args.lmu_hours:g} h: {truth.samples:,} samples, {laps} laps read in"
            f" {sec:.3f} s ({truth.samples / sec:,.0f} samples/s; generated in {gen_s:.2f} s)",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(out))
    else:
        print(f"cpu_count {out['cpu_count']}: timing {out['timing_rows_per_s']:,} rows/s"
              f" (slowest file {out['timing_max_file_s']} s); LMU {out['lmu']['samples_per_s']:,}"
              " samples/s")  # fmt: skip
    return 0


if __name__ == "__main__":
    run_main(main)
