-- The owner-passphrase failure budget per source (all of loopback is one source; IPv6 by /64),
-- in the database so that it survives a restart and, on a shared database, holds across
-- instances: an attacker cannot multiply their guesses by restarting or by the instance count.
CREATE TABLE passphrase_failures (
    source       TEXT    PRIMARY KEY,
    failures     INTEGER NOT NULL,
    locked_until INTEGER NOT NULL           -- Unix milliseconds
);
