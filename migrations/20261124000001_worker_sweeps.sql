-- The sweeper looks for outbound messages still on their way (queued,
-- sending, or sent without a final receipt) that stopped moving. The first
-- migration's partial index left `sent` out.
CREATE INDEX messages_unsettled_idx ON messages (updated_at)
    WHERE status IN ('queued', 'sending', 'sent');
DROP INDEX messages_live_idx;
