DROP TABLE reconciler_lease;
DROP TABLE leg_removals;
DROP INDEX sip_trunks_provisioning_due;
ALTER TABLE sip_trunks DROP COLUMN provisioning_lease_until;
ALTER TABLE sip_trunks DROP COLUMN provisioning_lease;
ALTER TABLE sip_trunks DROP COLUMN provisioning_state;
