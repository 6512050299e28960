-- One writer of readiness (docs/device-protocol.md, "Readiness: one writer"):
-- `readiness_rev` grows with every readiness write, so a writer holding a copy (the device
-- gateway) can make its write conditional on the copy being current.
ALTER TABLE aeds ADD COLUMN readiness_rev INTEGER NOT NULL DEFAULT 0;

-- Protocol version 2: a device names its boot (session); sequence numbers are unique per
-- (AED, boot), so a device that reboots and starts again at a low seq is not taken for a
-- resend. Version 1 devices have the empty boot. SQLite cannot change a table constraint in
-- place: the log is copied into a new table.
CREATE TABLE device_events_v2 (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    aed_id       INTEGER NOT NULL REFERENCES aeds (id) ON DELETE CASCADE,
    boot         TEXT NOT NULL DEFAULT '',
    seq          INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    body         TEXT NOT NULL,
    device_ts    TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    UNIQUE (aed_id, boot, seq)
);
INSERT INTO device_events_v2 (id, aed_id, boot, seq, kind, body, device_ts, received_at)
    SELECT id, aed_id, '', seq, kind, body, device_ts, received_at FROM device_events;
DROP TABLE device_events;
ALTER TABLE device_events_v2 RENAME TO device_events;
