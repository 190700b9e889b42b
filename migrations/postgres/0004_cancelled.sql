-- A request its requester withdrew (an MCP client cancelled its call) is `cancelled`.
ALTER TABLE permissions DROP CONSTRAINT permissions_status_check;
ALTER TABLE permissions ADD CONSTRAINT permissions_status_check
    CHECK (status IN ('pending', 'allowed', 'denied', 'timeout', 'cancelled'));
