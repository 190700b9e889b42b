-- Consent forms shown and not yet answered (migrations/sqlite/0011_oauth_consent_forms.sql).
CREATE TABLE oauth_consent_forms (
    id         TEXT   PRIMARY KEY,
    csrf_hash  BYTEA  NOT NULL,
    request    TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX oauth_consent_forms_expiry ON oauth_consent_forms(expires_at);
