-- Manual readiness overrides (a guardian found pads missing): held against telemetry until
-- cleared or until `until`; and indexes for the maintenance list's expiry filters.
CREATE TABLE readiness_overrides (
    aed_id   BIGINT PRIMARY KEY REFERENCES aeds (id) ON DELETE CASCADE,
    status   TEXT NOT NULL,
    reason   TEXT,
    since    TIMESTAMPTZ NOT NULL,
    until    TIMESTAMPTZ,
    set_by   TEXT NOT NULL
);
CREATE INDEX readiness_overrides_until ON readiness_overrides (until);
CREATE INDEX aeds_pads_expiry ON aeds (pads_expiry);
CREATE INDEX aeds_battery_expiry ON aeds (battery_expiry);
