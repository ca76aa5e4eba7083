-- What each account holds, kept in the same transaction as every insert and delete of its
-- trunks and keys, so that the account limits are checked in O(1) under the owner's row lock
-- (a COUNT(*) grew with the account and ran while every other create of it waited).
ALTER TABLE users ADD COLUMN trunk_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN api_key_count BIGINT NOT NULL DEFAULT 0;
UPDATE users SET
    trunk_count = (SELECT COUNT(*) FROM sip_trunks WHERE sip_trunks.user_id = users.id),
    api_key_count = (SELECT COUNT(*) FROM api_keys WHERE api_keys.user_id = users.id);
-- The rows still to re-bind to their trunk (migration 000003): empty once they all are, so
-- the check at every start costs nothing.
CREATE INDEX sip_trunks_owner_bound ON sip_trunks (id) WHERE sip_password_binding = 1;
