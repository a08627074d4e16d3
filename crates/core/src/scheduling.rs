//! Scheduled calls: the statuses, the outcomes a retry policy can name, and
//! the one SQL expression that renders a scheduled call as the API and its
//! `scheduled_call.updated` events show it (so both always agree).
//!
//! ```text
//! pending ──► dialing ──► completed
//!    ▲           │
//!    │           ├──► retrying ──► dialing ──► …
//!    │           └──► exhausted
//!    └── deferred (calling hours, concurrency cap): stays pending/retrying
//! any non-final status ──► canceled
//! ```

/// The statuses, in lifecycle order.
pub const STATUSES: [&str; 6] = [
    "pending",
    "dialing",
    "retrying",
    "completed",
    "exhausted",
    "canceled",
];

/// Final statuses: nothing changes them any more.
pub fn is_final(status: &str) -> bool {
    matches!(status, "completed" | "exhausted" | "canceled")
}

/// The call outcomes a retry policy may retry on.
pub const RETRYABLE_OUTCOMES: [&str; 3] = ["busy", "no-answer", "failed"];

/// Most attempts one scheduled call may make.
pub const MAX_ATTEMPTS: u32 = 10;

/// Longest wait between attempts (one day).
pub const MAX_BACKOFF_SECONDS: u32 = 86_400;

/// `jsonb` for the scheduled call aliased `s`, with its attempts (each an
/// ordinary call, with that call's current status). Timestamps are UTC with
/// `Z`, as the API writes them.
pub const SCHEDULED_CALL_JSON: &str = "jsonb_build_object(\
    'id', s.id, 'tenant_id', s.tenant_id, 'status', s.status, \
    'to', s.to_number, 'from', s.from_number, 'customer_id', s.customer_id, \
    'run_at', to_char(s.run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
    'retry', jsonb_build_object('max_attempts', s.max_attempts, \
        'backoff_seconds', s.backoff_seconds, 'on', to_jsonb(s.retry_on)), \
    'attempts', coalesce((SELECT jsonb_agg(jsonb_build_object(\
            'attempt', a.attempt, 'call_id', a.call_id, 'status', c.status, \
            'started_at', to_char(a.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
            'ended_at', to_char(c.ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')) \
            ORDER BY a.attempt) \
        FROM scheduled_call_attempts a JOIN calls c ON c.id = a.call_id \
        WHERE a.scheduled_call_id = s.id), '[]'::jsonb), \
    'next_attempt_at', to_char(s.next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
    'last_error', s.last_error, 'version', s.version, 'created_by', s.created_by, \
    'created_at', to_char(s.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
    'updated_at', to_char(s.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_completed_exhausted_and_canceled_are_final() {
        let finals: Vec<_> = STATUSES.into_iter().filter(|s| is_final(s)).collect();
        assert_eq!(finals, ["completed", "exhausted", "canceled"]);
    }
}
