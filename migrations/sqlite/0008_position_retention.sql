-- Retention of personal data: rescuers' positions recorded at accept and arrival are erased
-- from incidents some time after they close; this marks incidents already done, and the
-- partial index finds the ones still to do.
ALTER TABLE incidents ADD COLUMN positions_erased_at TEXT;
CREATE INDEX incidents_positions_kept ON incidents (updated_at) WHERE positions_erased_at IS NULL;
