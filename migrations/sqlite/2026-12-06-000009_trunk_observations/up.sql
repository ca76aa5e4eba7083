-- What the reconciler saw of trunks' legs, their last provisioning failure and their last
-- on-demand probe, for the status endpoints (docs/diagnostics.md). A row exists only for a
-- trunk found divergent, just repaired, failed or probed: the time of the last full scan
-- stands for every other trunk.
CREATE TABLE trunk_observations (
    trunk_id BIGINT PRIMARY KEY NOT NULL,
    checked_at TIMESTAMP(6),
    inbound_leg TEXT,
    -- 0 or 1: whether the infrastructure held the leg as the settings need.
    inbound_held SMALLINT,
    outbound_leg TEXT,
    outbound_held SMALLINT,
    failure TEXT CHECK (failure IN ('number_taken', 'refused', 'unauthorized', 'unavailable')),
    failure_at TIMESTAMP(6),
    -- The last probe a client asked for (one per trunk every 10 s, across replicas).
    probe_requested_at TIMESTAMP(6)
);

-- When the reconciler's last full scan began.
ALTER TABLE reconciler_lease ADD COLUMN last_full_scan_at TIMESTAMP(6);
