-- The expirer asks for the earliest deadline among pending requests and for those past it; without
-- this index both questions scan every pending row.
CREATE INDEX permissions_status_deadline ON permissions(status, deadline);
