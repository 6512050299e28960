-- Data derived from an import and served from memory (the walking graph, the street basemap,
-- the address index): one row per kind, replaced whole in one transaction by a later import.
-- `version` grows with every replacement so nodes notice a new one by polling this small table.
CREATE TABLE artifacts (
    kind      TEXT PRIMARY KEY,
    version   INTEGER NOT NULL,
    built_at  TEXT NOT NULL,
    meta      TEXT NOT NULL,
    bytes     BLOB NOT NULL
);
