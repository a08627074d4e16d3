-- Checks the rows written before `call_events_kind_check` existed (see the
-- previous migration). VALIDATE takes SHARE UPDATE EXCLUSIVE: calls keep
-- writing history while it scans.
ALTER TABLE call_events VALIDATE CONSTRAINT call_events_kind_check;
