-- Whether a token holds `admin`, so the last-admin rule is a column test rather than a text match
-- on the scope list; and a pending request's `old_content` bytes, so the per-credential budget is
-- a sum rather than a JSON extraction. Both are written with the row.
ALTER TABLE tokens ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
UPDATE tokens SET admin = 1 WHERE (',' || scopes || ',') LIKE '%,admin,%';
ALTER TABLE permissions ADD COLUMN old_content_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE permissions SET old_content_bytes = COALESCE(LENGTH(CAST(json_extract(body, '$.old_content') AS BLOB)), 0)
    WHERE status = 'pending';
