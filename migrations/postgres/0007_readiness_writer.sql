-- One writer of readiness (docs/device-protocol.md, "Readiness: one writer"):
-- `readiness_rev` grows with every readiness write, so a writer holding a copy (the device
-- gateway) can make its write conditional on the copy being current.
ALTER TABLE aeds ADD COLUMN readiness_rev BIGINT NOT NULL DEFAULT 0;

-- Protocol version 2: a device names its boot (session); sequence numbers are unique per
-- (AED, boot), so a device that reboots and starts again at a low seq is not taken for a
-- resend. Version 1 devices have the empty boot.
ALTER TABLE device_events ADD COLUMN boot TEXT NOT NULL DEFAULT '';
ALTER TABLE device_events DROP CONSTRAINT device_events_aed_id_seq_key;
ALTER TABLE device_events ADD CONSTRAINT device_events_aed_id_boot_seq_key UNIQUE (aed_id, boot, seq);
