DROP TABLE trunk_observations;
ALTER TABLE reconciler_lease DROP COLUMN last_full_scan_at;
