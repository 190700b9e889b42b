-- The owner-passphrase failure budget per source, shared by every instance (see
-- migrations/sqlite/0008_passphrase_failures.sql).
CREATE TABLE passphrase_failures (
    source       TEXT   PRIMARY KEY,
    failures     BIGINT NOT NULL,
    locked_until BIGINT NOT NULL
);
