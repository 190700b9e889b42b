-- Consent forms shown and not yet answered, so any instance can take the answer (they were held
-- in the memory of the instance that showed them). Only the hash of a form's CSRF token.
CREATE TABLE oauth_consent_forms (
    id         TEXT    PRIMARY KEY,
    csrf_hash  BLOB    NOT NULL,
    request    TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX oauth_consent_forms_expiry ON oauth_consent_forms(expires_at);
