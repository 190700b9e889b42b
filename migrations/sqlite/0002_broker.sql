-- Permission requests: pending ones survive restarts; decided ones keep their provenance.
CREATE TABLE permissions (
    id                 TEXT    PRIMARY KEY,
    kind               TEXT    NOT NULL,
    summary            TEXT    NOT NULL,          -- one line for people
    body               TEXT    NOT NULL,          -- the request as submitted and normalised (JSON)
    targets            TEXT    NOT NULL,          -- normalised targets the policy matched (JSON array)
    agent              TEXT,
    session            TEXT,
    workspace          TEXT,
    requester_id       TEXT    NOT NULL REFERENCES tokens(id),
    requester_name     TEXT    NOT NULL,
    status             TEXT    NOT NULL CHECK (status IN ('pending', 'allowed', 'denied', 'timeout')),
    created_at         INTEGER NOT NULL,
    deadline           INTEGER,                   -- NULL: wait indefinitely
    approvals_required INTEGER NOT NULL DEFAULT 1,
    decided_at         INTEGER,
    decided_by         TEXT,                      -- provenance (JSON)
    message            TEXT
);
CREATE INDEX permissions_status_created ON permissions(status, created_at, id);
CREATE INDEX permissions_created ON permissions(created_at, id);

-- Distinct approvers of a request (N-of-M).
CREATE TABLE approvals (
    permission_id TEXT    NOT NULL REFERENCES permissions(id),
    token_id      TEXT    NOT NULL,
    token_name    TEXT    NOT NULL,
    at            INTEGER NOT NULL,
    PRIMARY KEY (permission_id, token_id)
);

-- Remembered and API-added rules (configured rules live in config.toml).
CREATE TABLE rules (
    id         TEXT    PRIMARY KEY,
    spec       TEXT    NOT NULL,                  -- RuleSpec (JSON)
    origin     TEXT    NOT NULL,                  -- Origin (JSON)
    created_at INTEGER NOT NULL
);

-- The audit log, append-only and hash-chained: hash = SHA-256(prev_hash ‖ seq ‖ at ‖ event ‖ subject ‖ data).
-- It is also the event stream: seq is the SSE event id.
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    event     TEXT    NOT NULL,
    subject   TEXT,
    data      TEXT    NOT NULL,
    prev_hash BLOB    NOT NULL,
    hash      BLOB    NOT NULL
);
