-- A request its requester withdrew (an MCP client cancelled its call) is `cancelled`. SQLite
-- cannot widen a CHECK in place, so `permissions` is rebuilt, and `approvals` with it: a table
-- that others reference cannot be dropped while foreign keys are on, and a migration runs inside
-- one transaction, where they cannot be turned off. Renaming the new `permissions` moves
-- `approvals`' reference along with it.
CREATE TABLE permissions_rebuilt (
    id                 TEXT    PRIMARY KEY,
    kind               TEXT    NOT NULL,
    summary            TEXT    NOT NULL,
    body               TEXT    NOT NULL,
    targets            TEXT    NOT NULL,
    agent              TEXT,
    session            TEXT,
    workspace          TEXT,
    requester_id       TEXT    NOT NULL REFERENCES tokens(id),
    requester_name     TEXT    NOT NULL,
    status             TEXT    NOT NULL
        CHECK (status IN ('pending', 'allowed', 'denied', 'timeout', 'cancelled')),
    created_at         INTEGER NOT NULL,
    deadline           INTEGER,
    approvals_required INTEGER NOT NULL DEFAULT 1,
    decided_at         INTEGER,
    decided_by         TEXT,
    message            TEXT,
    requester_actor    TEXT,
    old_content_bytes  INTEGER NOT NULL DEFAULT 0
);
INSERT INTO permissions_rebuilt (
    id, kind, summary, body, targets, agent, session, workspace, requester_id, requester_name,
    status, created_at, deadline, approvals_required, decided_at, decided_by, message,
    requester_actor, old_content_bytes)
SELECT
    id, kind, summary, body, targets, agent, session, workspace, requester_id, requester_name,
    status, created_at, deadline, approvals_required, decided_at, decided_by, message,
    requester_actor, old_content_bytes
FROM permissions;
CREATE TABLE approvals_rebuilt (
    permission_id TEXT    NOT NULL REFERENCES permissions_rebuilt(id),
    token_id      TEXT    NOT NULL,
    token_name    TEXT    NOT NULL,
    at            INTEGER NOT NULL,
    PRIMARY KEY (permission_id, token_id)
);
INSERT INTO approvals_rebuilt (permission_id, token_id, token_name, at)
SELECT permission_id, token_id, token_name, at FROM approvals;
DROP TABLE approvals;
DROP TABLE permissions;
ALTER TABLE permissions_rebuilt RENAME TO permissions;
ALTER TABLE approvals_rebuilt RENAME TO approvals;
CREATE INDEX permissions_status_created ON permissions(status, created_at, id);
CREATE INDEX permissions_created ON permissions(created_at, id);
CREATE INDEX permissions_status_deadline ON permissions(status, deadline);
