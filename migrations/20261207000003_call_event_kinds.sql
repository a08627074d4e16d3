-- A call's history entry names what it records; the API reads it into the
-- `CallEventKind` its document lists, so the column holds only those names:
-- `status` and the controls and events the code writes.
ALTER TABLE call_events
    ADD CONSTRAINT call_events_kind_check
        CHECK (kind IN ('status', 'hold', 'unhold', 'mute', 'unmute', 'record',
                        'stop-recording', 'transfer', 'recording'));
