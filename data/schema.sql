-- The canonical lap store: one SQLite database that every reader writes.
-- Units are SI and stated per column: seconds [s], metres [m], degrees Celsius [C],
-- fractions (fuel of tank, energy of allocation, tread left: 1 = new). A channel a source
-- lacks is NULL, never a guessed number. Every row knows the file and reader it came from
-- (source_id); re-ingesting a file deletes its rows first (ON DELETE CASCADE from sources).

PRAGMA foreign_keys = ON;

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Provenance: one row per ingested file.
CREATE TABLE IF NOT EXISTS sources (
    source_id   INTEGER PRIMARY KEY,
    path        TEXT NOT NULL UNIQUE,   -- absolute path at ingestion
    reader      TEXT NOT NULL,          -- e.g. 'alkamel_csv', 'rf2_xml', 'lmu_duckdb'
    sha256      TEXT NOT NULL,
    size_bytes  INTEGER NOT NULL,
    ingested_at TEXT NOT NULL,          -- ISO 8601 UTC
    warnings    TEXT NOT NULL DEFAULT '[]'  -- JSON list of strings
);

CREATE TABLE IF NOT EXISTS sessions (
    session_id        INTEGER PRIMARY KEY,
    source_id         INTEGER NOT NULL REFERENCES sources(source_id) ON DELETE CASCADE,
    name              TEXT NOT NULL,     -- e.g. 'wec_2024_lemans_24h'
    series            TEXT,              -- 'WEC', 'IMSA', 'LMU', 'rF2'
    track             TEXT,
    session_type      TEXT,              -- 'race', 'qualifying', 'practice'
    start_time_utc    TEXT,              -- ISO 8601 where known
    start_hour_of_day REAL,              -- local time of day at the start [h]
    duration_s        REAL,              -- scheduled length [s] (time-certain races)
    laps_scheduled    INTEGER,           -- scheduled laps (lap races)
    track_length_m    REAL,
    fuel_mult         REAL,              -- sim fuel use rate multiplier (rF2 / LMU FuelMult)
    tyre_mult         REAL               -- sim tyre wear rate multiplier (rF2 / LMU TireMult)
);

CREATE TABLE IF NOT EXISTS cars (
    car_id          INTEGER PRIMARY KEY,
    session_id      INTEGER NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
    number          TEXT NOT NULL,      -- race number as text ('007')
    class           TEXT,               -- 'HYPERCAR', 'LMP2', 'LMGT3', 'GTP', ...
    team            TEXT,
    manufacturer    TEXT,
    vehicle         TEXT,
    fuel_capacity_l REAL,
    finish_status   TEXT,               -- 'finished', 'retired', 'dq', NULL if unknown
    laps_completed  INTEGER,
    UNIQUE (session_id, number)
);

CREATE TABLE IF NOT EXISTS drivers (
    driver_id     INTEGER PRIMARY KEY,
    car_id        INTEGER NOT NULL REFERENCES cars(car_id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    driver_number INTEGER,             -- position in the car's line-up (1-based) where known
    UNIQUE (car_id, name)
);

-- One row per car per lap.
CREATE TABLE IF NOT EXISTS laps (
    lap_id         INTEGER PRIMARY KEY,
    session_id     INTEGER NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
    car_id         INTEGER NOT NULL REFERENCES cars(car_id) ON DELETE CASCADE,
    driver_id      INTEGER REFERENCES drivers(driver_id) ON DELETE SET NULL,
    lap            INTEGER NOT NULL,    -- lap number, 1 = first lap
    lap_time_s     REAL,                -- NULL where the source gives none
    timed          INTEGER NOT NULL DEFAULT 1,  -- 0: untimed / invalid lap, kept but flagged
    s1_s           REAL,
    s2_s           REAL,
    s3_s           REAL,
    race_time_s    REAL,                -- race time when crossing the line at the lap's end [s]
    position       INTEGER,             -- overall position at the line
    class_position INTEGER,
    pit_in         INTEGER NOT NULL DEFAULT 0,  -- 1: the lap ends in the pit lane (in-lap)
    pit_out        INTEGER NOT NULL DEFAULT 0,  -- 1: the lap starts from the pits (out-lap)
    pit_time_s     REAL,                -- time in the pit lane [s], on the out-lap
    compound       INTEGER,             -- 0 soft, 1 medium, 2 hard, 3 wet
    compound_name  TEXT,
    tyre_age_laps  INTEGER,
    fuel_start     REAL,                -- fuel at the lap's start, fraction of tank
    fuel_end       REAL,                -- fuel at the lap's end, fraction of tank
    fuel_used_l    REAL,
    energy_start   REAL,                -- virtual energy, fraction of allocation
    energy_end     REAL,
    tread_fl       REAL,                -- tread left at the lap's end, fraction (1 = new)
    tread_fr       REAL,
    tread_rl       REAL,
    tread_rr       REAL,
    tyre_temp_c    REAL,                -- mean tyre temperature over the lap [C]
    track_temp_c   REAL,
    air_temp_c     REAL,
    wetness        REAL,                -- track wetness, 0 dry to 1 wet
    rain           REAL,                -- rain intensity, 0 to 1
    flag           INTEGER,             -- 0 green, 1 local yellow, 2 FCY, 3 SC, 4 slow zone, 5 chequered
    impacts        INTEGER,             -- impacts / contacts during the lap
    damage         REAL,                -- 0 none to 1 severe, at the lap's end
    driver_change  INTEGER NOT NULL DEFAULT 0,  -- 1: a different driver from the previous lap
    UNIQUE (session_id, car_id, lap)
);
CREATE INDEX IF NOT EXISTS laps_by_session ON laps (session_id, car_id, lap);

CREATE TABLE IF NOT EXISTS pit_stops (
    stop_id       INTEGER PRIMARY KEY,
    session_id    INTEGER NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
    car_id        INTEGER NOT NULL REFERENCES cars(car_id) ON DELETE CASCADE,
    lap           INTEGER NOT NULL,     -- the in-lap
    race_time_s   REAL,                 -- race time at pit entry (the in-lap's line crossing) [s]
    pit_time_s    REAL,                 -- time in the pit lane [s]
    refuel        INTEGER,              -- 1 refuelled, 0 not, NULL unknown
    fuel_added    REAL,                 -- fraction of tank
    tyres_changed INTEGER,              -- tyres changed (0 to 4), NULL unknown
    driver_change INTEGER               -- 1 driver changed, 0 not, NULL unknown
);

-- Race neutralisations and flags; kind uses the laps.flag codes.
CREATE TABLE IF NOT EXISTS flag_periods (
    period_id   INTEGER PRIMARY KEY,
    session_id  INTEGER NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
    kind        INTEGER NOT NULL,
    start_s     REAL NOT NULL,          -- race time [s]
    end_s       REAL,
    start_lap   INTEGER,                -- leader's lap
    end_lap     INTEGER
);

CREATE TABLE IF NOT EXISTS incidents (
    incident_id  INTEGER PRIMARY KEY,
    session_id   INTEGER NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
    race_time_s  REAL NOT NULL,
    car_id       INTEGER REFERENCES cars(car_id) ON DELETE CASCADE,
    other_car_id INTEGER REFERENCES cars(car_id) ON DELETE SET NULL,
    kind         TEXT NOT NULL,         -- 'contact', 'object', 'impact', 'retirement', 'penalty', 'puncture', 'slow' (simulated: a crawl to the pits on an empty tank)
    magnitude    REAL,                  -- impact strength as the source reports it (simulated: damage 0-1)
    lap          INTEGER,
    description  TEXT
);

CREATE TABLE IF NOT EXISTS weather (
    sample_id     INTEGER PRIMARY KEY,
    session_id    INTEGER NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
    race_time_s   REAL NOT NULL,
    time_utc      TEXT,
    air_temp_c    REAL,
    track_temp_c  REAL,
    humidity_pct  REAL,
    pressure_hpa  REAL,
    wind_speed_ms REAL,
    wind_dir_deg  REAL,
    rain          REAL,
    wetness       REAL
);

-- Per-step samples from sim recordings (fuel, wear, temperatures) finer than a lap.
CREATE TABLE IF NOT EXISTS state_samples (
    sample_id    INTEGER PRIMARY KEY,
    session_id   INTEGER NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
    car_id       INTEGER REFERENCES cars(car_id) ON DELETE CASCADE,
    step         INTEGER NOT NULL,
    race_time_s  REAL,
    lap_fraction REAL,                  -- 0 to 1 round the lap
    fuel         REAL,                  -- fraction of tank
    tread_fl     REAL,
    tread_fr     REAL,
    tread_rl     REAL,
    tread_rr     REAL,
    tyre_temp_c  REAL,
    air_temp_c   REAL,
    track_temp_c REAL,
    wetness      REAL
);

-- Indexes on the foreign keys, so deleting a source (re-ingesting a file) finds the child
-- rows of its sessions, cars and drivers without scanning whole tables.
CREATE INDEX IF NOT EXISTS sessions_by_source   ON sessions (source_id);
CREATE INDEX IF NOT EXISTS drivers_by_car       ON drivers (car_id);
CREATE INDEX IF NOT EXISTS laps_by_car          ON laps (car_id);
CREATE INDEX IF NOT EXISTS laps_by_driver       ON laps (driver_id);
CREATE INDEX IF NOT EXISTS pit_stops_by_session ON pit_stops (session_id, car_id, lap);
CREATE INDEX IF NOT EXISTS pit_stops_by_car     ON pit_stops (car_id);
CREATE INDEX IF NOT EXISTS flags_by_session     ON flag_periods (session_id, start_s);
CREATE INDEX IF NOT EXISTS incidents_by_session ON incidents (session_id, race_time_s);
CREATE INDEX IF NOT EXISTS incidents_by_car     ON incidents (car_id);
CREATE INDEX IF NOT EXISTS incidents_by_other   ON incidents (other_car_id);
CREATE INDEX IF NOT EXISTS weather_by_session   ON weather (session_id, race_time_s);
CREATE INDEX IF NOT EXISTS samples_by_session   ON state_samples (session_id, step);
CREATE INDEX IF NOT EXISTS samples_by_car       ON state_samples (car_id);
