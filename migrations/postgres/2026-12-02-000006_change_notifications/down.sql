DROP TRIGGER api_keys_changes ON api_keys;
DROP FUNCTION sip_trunks_notify_key();
DROP TRIGGER sip_trunks_changes ON sip_trunks;
DROP FUNCTION sip_trunks_notify_trunk();
