-- Web inbox sign-in: server-side sessions and one-time pairing links. Only the SHA-256 of a
-- session cookie or a pairing code is stored.

-- A one-time link that signs a second device (a phone) in with limited scopes.
CREATE TABLE pairings (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    code_hash   BLOB    NOT NULL UNIQUE,
    scopes      TEXT    NOT NULL,          -- comma-separated, granted to the paired session
    created_at  INTEGER NOT NULL,          -- Unix milliseconds
    expires_at  INTEGER NOT NULL,          -- the link's expiry
    created_by  TEXT    NOT NULL,          -- name of the credential that created it
    redeemed_at INTEGER,                   -- NULL: not used yet (links work once)
    revoked_at  INTEGER                    -- NULL: live; revoking ends its sessions too
);

CREATE TABLE web_sessions (
    id           TEXT    PRIMARY KEY,
    secret_hash  BLOB    NOT NULL UNIQUE,
    name         TEXT    NOT NULL,         -- shown as the approver in the audit log
    scopes       TEXT    NOT NULL,
    csrf         TEXT    NOT NULL,         -- per-session CSRF token (not a credential on its own)
    pairing_id   TEXT    REFERENCES pairings(id),
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,         -- idle expiry counts from here
    expires_at   INTEGER NOT NULL,         -- absolute expiry
    revoked_at   INTEGER                   -- signed out or its pairing revoked
);

CREATE INDEX web_sessions_pairing ON web_sessions(pairing_id);
