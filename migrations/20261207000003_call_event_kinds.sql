-- A call's history entry names what it records; the API reads it into the
-- `CallEventKind` its document lists, so the column holds only those names:
-- `status` and the controls and events the code writes. Added NOT VALID
-- (a brief lock, no scan) and validated by the next migration, in its own
-- transaction, which scans the table without blocking writes to it.
ALTER TABLE call_events
    ADD CONSTRAINT call_events_kind_check
        CHECK (kind IN ('status', 'hold', 'unhold', 'mute', 'unmute', 'record',
                        'stop-recording', 'transfer', 'recording'))
        NOT VALID;
