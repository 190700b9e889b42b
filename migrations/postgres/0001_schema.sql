-- The whole schema, as SQLite's migrations 0001–0007 leave it (see migrations/sqlite for the
-- reasons of each column). Times are Unix milliseconds (BIGINT); secrets are stored as their
-- SHA-256 only (BYTEA).

CREATE TABLE tokens (
    id           TEXT    PRIMARY KEY,
    name         TEXT    NOT NULL,
    secret_hash  BYTEA   NOT NULL UNIQUE,
    scopes       TEXT    NOT NULL,          -- comma-separated scope names, as granted
    admin        BOOLEAN NOT NULL DEFAULT FALSE, -- holds `admin` (the last-admin rule)
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT,                    -- NULL: never
    last_used_at BIGINT,
    revoked_at   BIGINT,                    -- NULL: live
    created_by   TEXT    REFERENCES tokens(id),
    client_id    TEXT,                      -- OAuth access tokens: client, audience, family
    audience     TEXT,
    family_id    TEXT,
    person       TEXT                       -- NULL: the owner
);
-- The name is what a unique violation names to tell a taken name from a secret collision.
CREATE UNIQUE INDEX tokens_live_name ON tokens(name) WHERE revoked_at IS NULL;
CREATE INDEX tokens_family ON tokens(family_id) WHERE family_id IS NOT NULL;

CREATE TABLE settings (
    key        TEXT   PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE permissions (
    id                 TEXT   PRIMARY KEY,
    kind               TEXT   NOT NULL,
    summary            TEXT   NOT NULL,
    body               TEXT   NOT NULL,
    targets            TEXT   NOT NULL,
    agent              TEXT,
    session            TEXT,
    workspace          TEXT,
    requester_id       TEXT   NOT NULL REFERENCES tokens(id),
    requester_name     TEXT   NOT NULL,
    requester_actor    TEXT,
    status             TEXT   NOT NULL CHECK (status IN ('pending', 'allowed', 'denied', 'timeout')),
    created_at         BIGINT NOT NULL,
    deadline           BIGINT,
    approvals_required BIGINT NOT NULL DEFAULT 1,
    decided_at         BIGINT,
    decided_by         TEXT,
    message            TEXT,
    old_content_bytes  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX permissions_status_created ON permissions(status, created_at, id);
CREATE INDEX permissions_created ON permissions(created_at, id);
CREATE INDEX permissions_status_deadline ON permissions(status, deadline);

CREATE TABLE approvals (
    permission_id TEXT   NOT NULL REFERENCES permissions(id),
    token_id      TEXT   NOT NULL,
    token_name    TEXT   NOT NULL,
    at            BIGINT NOT NULL,
    PRIMARY KEY (permission_id, token_id)
);

CREATE TABLE rules (
    id         TEXT   PRIMARY KEY,
    spec       TEXT   NOT NULL,
    origin     TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

-- Appended by one writer at a time across every instance (the writers' advisory lock), so seq
-- order is commit order and each instance can follow the log by seq.
CREATE TABLE audit (
    seq       BIGINT PRIMARY KEY,
    at        BIGINT NOT NULL,
    event     TEXT   NOT NULL,
    subject   TEXT,
    data      TEXT   NOT NULL,
    prev_hash BYTEA  NOT NULL,
    hash      BYTEA  NOT NULL
);

CREATE TABLE pairings (
    id          TEXT   PRIMARY KEY,
    name        TEXT   NOT NULL,
    code_hash   BYTEA  NOT NULL UNIQUE,
    scopes      TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    created_by  TEXT   NOT NULL,
    redeemed_at BIGINT,
    revoked_at  BIGINT
);

CREATE TABLE web_sessions (
    id           TEXT   PRIMARY KEY,
    secret_hash  BYTEA  NOT NULL UNIQUE,
    name         TEXT   NOT NULL,
    scopes       TEXT   NOT NULL,
    csrf         TEXT   NOT NULL,
    pairing_id   TEXT   REFERENCES pairings(id),
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX web_sessions_pairing ON web_sessions(pairing_id);

CREATE TABLE oauth_clients (
    id               TEXT   PRIMARY KEY,
    secret_hash      BYTEA,
    name             TEXT,
    redirect_uris    TEXT   NOT NULL,
    auth_method      TEXT   NOT NULL,
    application_type TEXT   NOT NULL,
    grant_types      TEXT   NOT NULL,
    scope            TEXT,
    metadata         TEXT   NOT NULL,
    created_at       BIGINT NOT NULL,
    deleted_at       BIGINT
);

CREATE TABLE oauth_grants (
    id         TEXT   PRIMARY KEY,
    client_id  TEXT   NOT NULL REFERENCES oauth_clients(id),
    scopes     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX oauth_grants_client ON oauth_grants(client_id);

CREATE TABLE oauth_families (
    id              TEXT   PRIMARY KEY,
    client_id       TEXT   NOT NULL REFERENCES oauth_clients(id),
    resource        TEXT   NOT NULL,
    scopes          TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    revoked_at      BIGINT,
    revoked_because TEXT
);

CREATE TABLE oauth_codes (
    code_hash      BYTEA  PRIMARY KEY,
    client_id      TEXT   NOT NULL REFERENCES oauth_clients(id),
    redirect_uri   TEXT   NOT NULL,
    code_challenge TEXT   NOT NULL,
    resource       TEXT   NOT NULL,
    scopes         TEXT   NOT NULL,
    family_id      TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT
);

CREATE TABLE oauth_refresh_tokens (
    token_hash BYTEA  PRIMARY KEY,
    family_id  TEXT   NOT NULL REFERENCES oauth_families(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX oauth_refresh_family ON oauth_refresh_tokens(family_id);
