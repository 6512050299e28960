-- aednet schema, SQLite. Timestamps are UTC (RFC 3339 text); JSON columns are text.
CREATE TABLE districts (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    source              TEXT NOT NULL,
    external_ref        TEXT,
    name                TEXT NOT NULL,
    code                TEXT,
    admin_level         INTEGER,
    population          INTEGER CHECK (population IS NULL OR population >= 0),
    boundary            TEXT,
    target_aeds_per_10k REAL,
    target_rescuers     INTEGER,
    tags                TEXT NOT NULL DEFAULT '{}',
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    UNIQUE (source, external_ref)
);

CREATE TABLE aeds (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    source               TEXT NOT NULL,
    external_ref         TEXT,
    lat                  REAL NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon                  REAL NOT NULL CHECK (lon BETWEEN -180 AND 180),
    name                 TEXT,
    address              TEXT,
    operator             TEXT,
    phone                TEXT,
    indoor               INTEGER,
    level                TEXT,
    location_description TEXT,
    access               TEXT NOT NULL,
    opening_hours        TEXT,
    opening_hours_valid  INTEGER NOT NULL,
    time_zone            TEXT NOT NULL,
    cabinet_locked       INTEGER NOT NULL,
    cabinet_code         TEXT,
    device_model         TEXT,
    device_serial        TEXT,
    pads_expiry          TEXT,
    battery_expiry       TEXT,
    status               TEXT NOT NULL,
    status_reason        TEXT,
    status_since         TEXT NOT NULL,
    district_id          INTEGER REFERENCES districts (id) ON DELETE SET NULL,
    tags                 TEXT NOT NULL DEFAULT '{}',
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    UNIQUE (source, external_ref)
);
CREATE INDEX aeds_lat_lon ON aeds (lat, lon);
CREATE INDEX aeds_district ON aeds (district_id);
CREATE INDEX aeds_status ON aeds (status);

CREATE TABLE stations (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    source              TEXT NOT NULL,
    external_ref        TEXT,
    kind                TEXT NOT NULL,
    name                TEXT NOT NULL,
    scenic_rating       TEXT,
    lat                 REAL NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon                 REAL NOT NULL CHECK (lon BETWEEN -180 AND 180),
    location_updated_at TEXT,
    address             TEXT,
    staffed_hours       TEXT,
    staffed_hours_valid INTEGER NOT NULL,
    time_zone           TEXT NOT NULL,
    contact_name        TEXT,
    contact_phone       TEXT,
    equipment           TEXT NOT NULL DEFAULT '[]',
    district_id         INTEGER REFERENCES districts (id) ON DELETE SET NULL,
    tags                TEXT NOT NULL DEFAULT '{}',
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    UNIQUE (source, external_ref)
);
CREATE INDEX stations_lat_lon ON stations (lat, lon);
CREATE INDEX stations_district ON stations (district_id);

CREATE TABLE station_aeds (
    station_id INTEGER NOT NULL REFERENCES stations (id) ON DELETE CASCADE,
    aed_id     INTEGER NOT NULL REFERENCES aeds (id) ON DELETE CASCADE,
    PRIMARY KEY (station_id, aed_id)
);
CREATE INDEX station_aeds_aed ON station_aeds (aed_id);

CREATE TABLE rescuers (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT NOT NULL,
    phone            TEXT,
    certificate_no   TEXT NOT NULL UNIQUE,
    level            TEXT NOT NULL,
    cert_issued      TEXT NOT NULL,
    cert_expires     TEXT NOT NULL,
    team             TEXT,
    skills           TEXT NOT NULL DEFAULT '[]',
    on_duty          INTEGER NOT NULL,
    location_consent INTEGER NOT NULL,
    district_id      INTEGER REFERENCES districts (id) ON DELETE SET NULL,
    -- Live location arrives with the dispatch work; kept only while on duty, with consent.
    last_lat         REAL,
    last_lon         REAL,
    last_location_at TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX rescuers_district ON rescuers (district_id);

CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    subject_id INTEGER,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
