-- Each requester's pending requests and their `old_content` bytes (see
-- migrations/sqlite/0009_pending_budgets.sql).
CREATE TABLE pending_budgets (
    requester_actor TEXT   PRIMARY KEY,
    pending         BIGINT NOT NULL,
    old_content     BIGINT NOT NULL
);
