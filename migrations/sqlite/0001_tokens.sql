-- API tokens: only the SHA-256 of each secret is stored.
CREATE TABLE tokens (
    id           TEXT    PRIMARY KEY,
    name         TEXT    NOT NULL,
    secret_hash  BLOB    NOT NULL UNIQUE,
    scopes       TEXT    NOT NULL,          -- comma-separated scope names, as granted
    created_at   INTEGER NOT NULL,          -- Unix milliseconds
    expires_at   INTEGER,                   -- NULL: never
    last_used_at INTEGER,
    revoked_at   INTEGER,                   -- NULL: live
    created_by   TEXT    REFERENCES tokens(id)
);

-- A name identifies one live token (the CLI revokes by name).
CREATE UNIQUE INDEX tokens_live_name ON tokens(name) WHERE revoked_at IS NULL;

-- Small daemon-wide settings, such as the owner passphrase's Argon2id PHC string.
CREATE TABLE settings (
    key        TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);
