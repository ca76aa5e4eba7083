DROP INDEX sip_trunks_owner_bound;
ALTER TABLE users DROP COLUMN api_key_count;
ALTER TABLE users DROP COLUMN trunk_count;
