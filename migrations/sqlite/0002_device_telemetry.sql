-- Device telemetry: the durable log of status-relevant device messages (idempotent per device
-- sequence number), each AED's readiness history, and the coalesced last-seen state.
CREATE TABLE device_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    aed_id       INTEGER NOT NULL REFERENCES aeds (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    body         TEXT NOT NULL,
    device_ts    TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    UNIQUE (aed_id, seq)
);

CREATE TABLE readiness_history (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    aed_id   INTEGER NOT NULL REFERENCES aeds (id) ON DELETE CASCADE,
    status   TEXT NOT NULL,
    reason   TEXT,
    since    TEXT NOT NULL,
    source   TEXT NOT NULL
);
CREATE INDEX readiness_history_aed ON readiness_history (aed_id, id);

CREATE TABLE device_state (
    aed_id         INTEGER PRIMARY KEY REFERENCES aeds (id) ON DELETE CASCADE,
    last_seen_at   TEXT NOT NULL,
    last_seq       INTEGER NOT NULL,
    battery_pct    INTEGER,
    temperature_c  REAL,
    signal_dbm     INTEGER,
    firmware       TEXT
);
