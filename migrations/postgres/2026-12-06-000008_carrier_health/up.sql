-- The health of each carrier address the stored trunks use (docs/diagnostics.md): the last
-- SIP OPTIONS probe and the state after hysteresis, one row per distinct `sip_address`, so
-- that every replica answers the same. `next_probe_at` is the schedule: a prober claims a due
-- row by moving it forward, then records its probe and the next time.
CREATE TABLE carrier_health (
    address TEXT PRIMARY KEY NOT NULL,
    -- 0 unknown, 1 reachable, 2 unreachable.
    state SMALLINT NOT NULL DEFAULT 0 CHECK (state IN (0, 1, 2)),
    since TIMESTAMP(6),
    last_probe_at TIMESTAMP(6),
    -- answered, timeout, icmp_unreachable or dns_failure; with answered, its code and reason.
    last_outcome TEXT CHECK (last_outcome IN ('answered', 'timeout', 'icmp_unreachable', 'dns_failure')),
    last_code INTEGER,
    last_reason TEXT,
    rtt_ms INTEGER,
    successes_in_row SMALLINT NOT NULL DEFAULT 0,
    failures_in_row SMALLINT NOT NULL DEFAULT 0,
    next_probe_at TIMESTAMP(6) NOT NULL
);
CREATE INDEX carrier_health_due ON carrier_health (next_probe_at);
