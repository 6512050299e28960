-- Calls handed over by a computer-aided dispatch system (POST /api/v1/cad/incidents): one row
-- per CAD call id, claimed before the incident is created, so a retried or duplicated call
-- never makes a second incident. `incident_id` is NULL while the claim's incident is being made.
CREATE TABLE cad_calls (
    call_id      TEXT PRIMARY KEY,
    body_sha256  TEXT NOT NULL,
    incident_id  INTEGER REFERENCES incidents (id),
    received_at  TEXT NOT NULL
);
