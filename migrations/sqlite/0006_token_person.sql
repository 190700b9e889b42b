-- The person a token acts for: N-of-M approvals count distinct people, and tokens without a
-- person, like the owner's web sessions and paired devices, are all the owner.
ALTER TABLE tokens ADD COLUMN person TEXT;
