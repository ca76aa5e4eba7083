-- The provisioning ledger (docs/provisioning.md): where each trunk stands with the voice
-- infrastructure, who is working on its legs, and the legs still to remove.

-- 0 ready, 1 creating (hidden from clients), 2 repair (legs missing or out of date).
ALTER TABLE sip_trunks ADD COLUMN provisioning_state SMALLINT NOT NULL DEFAULT 0
    CHECK (provisioning_state IN (0, 1, 2));
-- Who works on the trunk's legs, and until when (then anyone may take over).
ALTER TABLE sip_trunks ADD COLUMN provisioning_lease TEXT;
ALTER TABLE sip_trunks ADD COLUMN provisioning_lease_until TIMESTAMP(6);
-- The reconciler's work list: empty when every trunk is ready.
CREATE INDEX sip_trunks_provisioning_due ON sip_trunks (provisioning_lease_until)
    WHERE provisioning_state <> 0;

-- Legs to remove, queued in the transaction that stops referencing them.
CREATE TABLE leg_removals (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    leg_kind TEXT NOT NULL CHECK (leg_kind IN ('inbound', 'outbound')),
    leg_id TEXT NOT NULL,
    queued_at TIMESTAMP(6) NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at TIMESTAMP(6) NOT NULL
);
CREATE INDEX leg_removals_due ON leg_removals (due_at, id);

-- One row: the reconciler lease, so that one process at a time reconciles.
CREATE TABLE reconciler_lease (
    name TEXT PRIMARY KEY NOT NULL,
    holder TEXT NOT NULL,
    lease_until TIMESTAMP(6) NOT NULL
);
INSERT INTO reconciler_lease (name, holder, lease_until) VALUES ('reconciler', '', '1970-01-01 00:00:00');
