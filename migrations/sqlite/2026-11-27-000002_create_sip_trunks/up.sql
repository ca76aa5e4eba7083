CREATE TABLE sip_trunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sip_trunk_type TEXT NOT NULL CHECK (sip_trunk_type IN ('extension', 'number')),
    phone_number TEXT NOT NULL,
    nickname TEXT,
    sip_username TEXT NOT NULL,
    -- base64(nonce || AES-256-GCM ciphertext+tag) and the id of the key that sealed it.
    sip_password_sealed TEXT NOT NULL,
    sip_password_key_id TEXT NOT NULL,
    sip_address TEXT NOT NULL,
    sip_calling_format TEXT NOT NULL CHECK (sip_calling_format IN ('+e164', 'e164', 'national')),
    inbound_authorization_type TEXT NOT NULL CHECK (inbound_authorization_type IN ('auth', 'ip')),
    -- Canonical entries joined by ','; NULL exactly when the type is 'auth'.
    allowed_inbound_ips TEXT,
    outbound_proxy SMALLINT NOT NULL CHECK (outbound_proxy IN (0, 1)),
    country_code TEXT NOT NULL,
    inbound_trunk_id TEXT,
    outbound_trunk_id TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    CHECK ((inbound_authorization_type = 'ip') = (allowed_inbound_ips IS NOT NULL)),
    CONSTRAINT sip_trunks_identity UNIQUE (user_id, phone_number, sip_username, sip_address)
);

CREATE INDEX sip_trunks_user_id ON sip_trunks (user_id, id);
