-- What each sealed password is bound to (its AES-GCM associated data): 1 = the owner (rows
-- written before this migration), 2 = the owner and the trunk id (every write from now on).
-- The service re-seals binding-1 rows at start (it holds the key; SQL cannot).
ALTER TABLE sip_trunks ADD COLUMN sip_password_binding SMALLINT NOT NULL DEFAULT 1
    CHECK (sip_password_binding IN (1, 2));
CREATE INDEX sip_trunks_password_key ON sip_trunks (sip_password_key_id, sip_password_binding);
