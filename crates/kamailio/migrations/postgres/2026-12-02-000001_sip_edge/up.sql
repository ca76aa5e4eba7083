-- The tables the Kamailio of deploy/kamailio reads: Kamailio's own `address` (permissions),
-- `subscriber` (auth_db) and `version`, and `sip_trunks_legs`, one row per leg.
CREATE TABLE IF NOT EXISTS version (
    id SERIAL PRIMARY KEY NOT NULL,
    table_name VARCHAR(32) NOT NULL UNIQUE,
    table_version INTEGER DEFAULT 0 NOT NULL
);
INSERT INTO version (table_name, table_version) VALUES ('version', 1), ('address', 6), ('subscriber', 7) ON CONFLICT (table_name) DO NOTHING;

CREATE TABLE IF NOT EXISTS address (
    id SERIAL PRIMARY KEY NOT NULL,
    grp INTEGER DEFAULT 1 NOT NULL,
    ip_addr VARCHAR(50) NOT NULL,
    mask INTEGER DEFAULT 32 NOT NULL,
    port SMALLINT DEFAULT 0 NOT NULL,
    tag VARCHAR(64)
);
CREATE INDEX IF NOT EXISTS address_tag ON address (tag);

CREATE TABLE IF NOT EXISTS subscriber (
    id SERIAL PRIMARY KEY NOT NULL,
    username VARCHAR(255) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT '' NOT NULL,
    password VARCHAR(64) DEFAULT '' NOT NULL,
    ha1 VARCHAR(128) DEFAULT '' NOT NULL,
    ha1b VARCHAR(128) DEFAULT '' NOT NULL,
    UNIQUE (username, domain)
);

CREATE TABLE sip_trunks_legs (
    id VARCHAR(40) PRIMARY KEY NOT NULL,
    kind VARCHAR(8) NOT NULL,
    trunk_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    created_unix BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    number VARCHAR(64) NOT NULL,
    inbound_key VARCHAR(64) UNIQUE,
    access VARCHAR(8) NOT NULL DEFAULT '',
    grp INTEGER UNIQUE,
    realm VARCHAR(64) NOT NULL DEFAULT '',
    username VARCHAR(255) NOT NULL DEFAULT '',
    allowed TEXT NOT NULL DEFAULT '',
    address VARCHAR(255) NOT NULL DEFAULT '',
    password TEXT NOT NULL DEFAULT '',
    calling_format VARCHAR(8) NOT NULL DEFAULT '',
    country VARCHAR(2) NOT NULL DEFAULT '',
    calling_code VARCHAR(4) NOT NULL DEFAULT '',
    national_prefix VARCHAR(8) NOT NULL DEFAULT '',
    fixed_ip INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sip_trunks_legs_outbound ON sip_trunks_legs (trunk_id, kind, seq);
