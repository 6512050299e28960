-- Maintenance work orders (open → assigned → closed) with notes.
CREATE TABLE work_orders (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    aed_id      INTEGER NOT NULL REFERENCES aeds (id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    status      TEXT NOT NULL,
    assignee    TEXT,
    opened_by   TEXT NOT NULL,
    opened_at   TEXT NOT NULL,
    closed_at   TEXT,
    resolution  TEXT
);
CREATE INDEX work_orders_status ON work_orders (status, id);
CREATE INDEX work_orders_aed ON work_orders (aed_id);

CREATE TABLE work_order_notes (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    work_order_id  INTEGER NOT NULL REFERENCES work_orders (id) ON DELETE CASCADE,
    author         TEXT NOT NULL,
    note           TEXT NOT NULL,
    at             TEXT NOT NULL
);
CREATE INDEX work_order_notes_order ON work_order_notes (work_order_id, id);
