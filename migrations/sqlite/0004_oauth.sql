-- OAuth 2.1 authorization server for MCP clients. Secrets, codes and refresh tokens are stored as
-- their SHA-256 only. Access tokens live in `tokens`, like API tokens, with their client and
-- audience.

-- An access token issued to an OAuth client: the client, the resource it may be used on, and the
-- grant family (one consent, all the refreshes that follow) it belongs to.
ALTER TABLE tokens ADD COLUMN client_id TEXT;
ALTER TABLE tokens ADD COLUMN audience  TEXT;
ALTER TABLE tokens ADD COLUMN family_id TEXT;
CREATE INDEX tokens_family ON tokens(family_id) WHERE family_id IS NOT NULL;

-- Clients registered by RFC 7591 dynamic registration. They persist across restarts.
CREATE TABLE oauth_clients (
    id               TEXT    PRIMARY KEY,
    secret_hash      BLOB,                  -- NULL for public clients (auth method `none`)
    name             TEXT,                  -- self-asserted
    redirect_uris    TEXT    NOT NULL,      -- JSON array of exact URIs
    auth_method      TEXT    NOT NULL,      -- none | client_secret_basic | client_secret_post
    application_type TEXT    NOT NULL,      -- native | web
    grant_types      TEXT    NOT NULL,      -- JSON array
    scope            TEXT,                  -- as registered (informative; not a limit)
    metadata         TEXT    NOT NULL,      -- the registration response, JSON
    created_at       INTEGER NOT NULL,
    deleted_at       INTEGER                -- NULL: live
);

-- Remembered consent: the owner allowed this client these scopes without asking again.
CREATE TABLE oauth_grants (
    id         TEXT    PRIMARY KEY,
    client_id  TEXT    NOT NULL REFERENCES oauth_clients(id),
    scopes     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX oauth_grants_client ON oauth_grants(client_id);

-- One authorization (a code exchange) and every token refreshed from it.
CREATE TABLE oauth_families (
    id         TEXT    PRIMARY KEY,
    client_id  TEXT    NOT NULL REFERENCES oauth_clients(id),
    resource   TEXT    NOT NULL,
    scopes     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    revoked_because TEXT
);

-- Authorization codes: single use, short-lived, bound to everything the request said.
CREATE TABLE oauth_codes (
    code_hash      BLOB    PRIMARY KEY,
    client_id      TEXT    NOT NULL REFERENCES oauth_clients(id),
    redirect_uri   TEXT    NOT NULL,
    code_challenge TEXT    NOT NULL,
    resource       TEXT    NOT NULL,
    scopes         TEXT    NOT NULL,
    family_id      TEXT    NOT NULL,       -- the family its exchange creates
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER
);

-- Refresh tokens: rotated on every use; a reused one revokes its family.
CREATE TABLE oauth_refresh_tokens (
    token_hash BLOB    PRIMARY KEY,
    family_id  TEXT    NOT NULL REFERENCES oauth_families(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX oauth_refresh_family ON oauth_refresh_tokens(family_id);

-- Who asked, as an actor: the OAuth client for its access tokens (which change on every refresh),
-- NULL (= requester_id) for other credentials. "Its own requests" and self-approval use it.
ALTER TABLE permissions ADD COLUMN requester_actor TEXT;
