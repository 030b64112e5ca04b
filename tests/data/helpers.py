"""Small builders of input files for the data tests."""

from __future__ import annotations

from pathlib import Path

WEC_HEADER = (
    "NUMBER; DRIVER_NUMBER; LAP_NUMBER; LAP_TIME; LAP_IMPROVEMENT; CROSSING_FINISH_LINE_IN_PIT;"
    " S1; S1_IMPROVEMENT; S2; S2_IMPROVEMENT; S3; S3_IMPROVEMENT; KPH; ELAPSED; HOUR;S1_LARGE;"
    "S2_LARGE;S3_LARGE;TOP_SPEED;DRIVER_NAME;PIT_TIME;CLASS;GROUP;TEAM;MANUFACTURER;FLAG_AT_FL;"
    "S1_SECONDS;S2_SECONDS;S3_SECONDS;"
)


def clock(seconds: float) -> str:
    """Seconds as Al Kamel writes them: m:ss.sss, or h:mm:ss.sss from an hour."""
    h, rem = divmod(seconds, 3600.0)
    m, s = divmod(rem, 60.0)
    return f"{int(h)}:{int(m):02d}:{s:06.3f}" if h else f"{int(m)}:{s:06.3f}"


def wec_row(
    number: str,
    lap: int,
    lap_time: float,
    elapsed: float,
    *,
    driver: int = 1,
    pit_in: bool = False,
    pit_time: float | None = None,
    flag: str = "GF",
    cls: str = "HYPERCAR",
    start_hour: float = 14.0,
    lap_text: str | None = None,
) -> str:
    """One line of a WEC lap analysis (';' separated, trailing ';')."""
    hour = clock((start_hour * 3600.0 + elapsed) % 86400.0)
    s1, s2 = round(lap_time * 0.3, 3), round(lap_time * 0.4, 3)
    s3 = round(lap_time - s1 - s2, 3)
    fields = [
        number, str(driver), str(lap), lap_text if lap_text is not None else clock(lap_time), "0",
        "B" if pit_in else "", clock(s1), "0", clock(s2), "0", clock(s3), "0", "180.0",
        clock(elapsed), hour, clock(s1), clock(s2), clock(s3), "300.0", f"Driver {number}-{driver}",
        clock(pit_time) if pit_time is not None else "", cls, "", f"Team {number}", "Maker",
        flag, f"{s1:.3f}", f"{s2:.3f}", f"{s3:.3f}",
    ]  # fmt: skip
    return ";".join(fields) + ";"


def write_csv(path: Path, lines: list[str], *, bom: bool = True, crlf: bool = True) -> Path:
    """Write lines as Al Kamel does: UTF-8 with BOM, CRLF line ends."""
    text = ("\r\n" if crlf else "\n").join(lines) + ("\r\n" if crlf else "\n")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def small_race(path: Path) -> Path:
    """Three cars, a 1-hour race: car 007 pits on lap 3 and changes driver; car 2 retires
    after lap 2; an FCY at laps 4-5; everyone still running takes the chequered flag."""
    lines = [WEC_HEADER]
    lap_t = 600.0  # a slow circuit keeps the race short: 6 laps in an hour
    for number, offset in (("007", 0.0), ("2", 5.0), ("51", 9.0)):
        elapsed, driver = offset, 1
        for lap in range(1, 8):
            t = lap_t + (60.0 if lap == 4 and number == "007" else 0.0)
            elapsed += t
            if number == "2" and lap > 2:
                break
            flag = "FCY" if lap in (4, 5) else ("FF" if elapsed >= 3600.0 else "GF")
            pit_time = 60.0 if (number == "007" and lap == 4) else None
            if number == "007" and lap == 4:
                driver = 2
            lines.append(
                wec_row(number, lap, t, elapsed, driver=driver, pit_in=number == "007" and lap == 3,
                        pit_time=pit_time, flag=flag, cls="LMGT3" if number == "51" else "HYPERCAR")
            )  # fmt: skip
            if flag == "FF":
                break
    return write_csv(path, lines)
