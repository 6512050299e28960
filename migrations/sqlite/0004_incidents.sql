-- Incidents: the state machine as a JSON document (rewritten on each change) and the
-- append-only audit log (rows only ever inserted).
CREATE TABLE incidents (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    state       TEXT NOT NULL,
    doc         TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX incidents_state ON incidents (state);

CREATE TABLE incident_audit (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id  INTEGER NOT NULL REFERENCES incidents (id),
    seq          INTEGER NOT NULL,
    at           TEXT NOT NULL,
    entry        TEXT NOT NULL,
    UNIQUE (incident_id, seq)
);
