-- Each rescuer's own incident history (GET /api/v1/me/incidents): the incidents that offered
-- them something, linked as the engine saves an incident (from its audit entries naming a
-- rescuer). No foreign key to rescuers: a rescuer deleted while an incident is being saved must
-- not fail that save; their rows go with the rescuer and, for such a race, with the hourly
-- retention job.
CREATE TABLE rescuer_incidents (
    rescuer_id  INTEGER NOT NULL,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    PRIMARY KEY (rescuer_id, incident_id)
);

-- Incidents stored before this migration.
INSERT INTO rescuer_incidents (rescuer_id, incident_id)
SELECT DISTINCT json_extract(o.value, '$.rescuer_id'), i.id
FROM incidents i, json_each(i.doc, '$.offers') o
WHERE json_valid(i.doc) AND json_extract(o.value, '$.rescuer_id') IS NOT NULL
ON CONFLICT DO NOTHING;

-- Retention of delivery records: found by incident (closed long ago) and by rescuer (deleted).
CREATE INDEX deliveries_rescuer ON deliveries (rescuer_id);
