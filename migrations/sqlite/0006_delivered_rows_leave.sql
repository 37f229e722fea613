-- A delivered outbox row leaves its table: kept, every forward's payload
-- stayed on disk for good and the tables the egress claims from grew without
-- bound. Rows delivered before this version leave now.
DELETE FROM outbox WHERE state = 'delivered';
DELETE FROM egress_outbox WHERE state = 'delivered';
