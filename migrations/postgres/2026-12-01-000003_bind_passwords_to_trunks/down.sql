DROP INDEX sip_trunks_password_key;
ALTER TABLE sip_trunks DROP COLUMN sip_password_binding;
