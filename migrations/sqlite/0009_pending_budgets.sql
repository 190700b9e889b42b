-- Each requester's pending requests and their `old_content` bytes, kept beside the requests (in
-- the same transactions), so checking a new request against its credential's budget is one
-- indexed row, not a count over every pending request.
CREATE TABLE pending_budgets (
    requester_actor TEXT    PRIMARY KEY,
    pending         INTEGER NOT NULL,
    old_content     INTEGER NOT NULL
);
INSERT INTO pending_budgets (requester_actor, pending, old_content)
    SELECT requester_actor, COUNT(*), SUM(old_content_bytes) FROM permissions
    WHERE status = 'pending' AND requester_actor IS NOT NULL GROUP BY requester_actor;
