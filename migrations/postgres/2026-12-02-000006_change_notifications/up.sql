-- Every replica's caches follow the writes of every other through NOTIFY: a trigger sends,
-- in the writing transaction (so only what commits is announced, and whatever writes:
-- any replica, the CLI, a hand-written statement).
--   'u:<user id>'  a trunk of that user was created, changed or deleted
--   'k:<key id>'   that API key was deleted (revoked)
-- PostgreSQL folds identical notifications of one transaction into one.
CREATE FUNCTION sip_trunks_notify_trunk() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('sip_trunks_changes', 'u:' || OLD.user_id);
    ELSE
        PERFORM pg_notify('sip_trunks_changes', 'u:' || NEW.user_id);
        IF TG_OP = 'UPDATE' AND OLD.user_id <> NEW.user_id THEN
            PERFORM pg_notify('sip_trunks_changes', 'u:' || OLD.user_id);
        END IF;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER sip_trunks_changes AFTER INSERT OR UPDATE OR DELETE ON sip_trunks
    FOR EACH ROW EXECUTE FUNCTION sip_trunks_notify_trunk();

CREATE FUNCTION sip_trunks_notify_key() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('sip_trunks_changes', 'k:' || OLD.id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER api_keys_changes AFTER DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION sip_trunks_notify_key();
