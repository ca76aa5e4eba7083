-- AUTOINCREMENT: ids are never reused, even after the newest row is deleted.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    -- Lower-case hex SHA-256 of the token's secret; the token itself is never stored.
    token_hash TEXT NOT NULL UNIQUE,
    last_used_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);

CREATE INDEX api_keys_user_id ON api_keys (user_id, id);
