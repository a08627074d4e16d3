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

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::calls::CallStatus;
use crate::records::{BuiltSql, utc_text};

crate::text_enum! {
    /// Where a scheduled call is in its lifecycle:
    /// `pending → dialing → completed | retrying → … | exhausted | canceled`.
    pub enum ScheduledCallStatus {
        /// Waiting for its time (or its calling window).
        Pending = "pending",
        /// An attempt's call is on the line.
        Dialing = "dialing",
        /// An attempt ended with an outcome the policy retries; the next one
        /// waits for its backoff.
        Retrying = "retrying",
        /// An attempt's call completed.
        Completed = "completed",
        /// Given up: an attempt did not complete and no retry applies (attempts
        /// used up, or an outcome the policy does not retry), or the tenant has
        /// no number to call from.
        Exhausted = "exhausted",
        /// Canceled before it completed.
        Canceled = "canceled",
    }
}

impl ScheduledCallStatus {
    /// Waiting for an attempt (`pending`, `retrying`): its job runs at
    /// `next_attempt_at`.
    pub const WAITING: [ScheduledCallStatus; 2] = [Self::Pending, Self::Retrying];

    /// Final statuses (`completed`, `exhausted`, `canceled`): nothing changes
    /// them any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Exhausted | Self::Canceled)
    }
}

/// A call outcome a retry policy can retry on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RetryOutcome {
    /// The callee was busy.
    Busy,
    /// Nobody answered.
    NoAnswer,
    /// The call failed.
    Failed,
}

impl RetryOutcome {
    /// Every outcome a policy may name: a policy without `on` retries all.
    pub const ALL: [RetryOutcome; 3] = [Self::Busy, Self::NoAnswer, Self::Failed];

    /// The wire (and `retry_on` column) spelling, the call status's own.
    pub fn as_str(self) -> &'static str {
        self.call_status().as_str()
    }

    /// The call status this outcome is.
    pub fn call_status(self) -> CallStatus {
        match self {
            Self::Busy => CallStatus::Busy,
            Self::NoAnswer => CallStatus::NoAnswer,
            Self::Failed => CallStatus::Failed,
        }
    }

    /// The outcome an attempt's final call status is, when a policy could
    /// retry it (`completed` and `canceled` are never retried).
    pub fn of(status: CallStatus) -> Option<RetryOutcome> {
        Self::ALL
            .into_iter()
            .find(|outcome| outcome.call_status() == status)
    }
}

/// Most attempts one scheduled call may make.
pub const MAX_ATTEMPTS: u32 = 10;

/// Longest wait between attempts (one day).
pub const MAX_BACKOFF_SECONDS: u32 = 86_400;

/// `jsonb` for the scheduled call aliased `s`, with its attempts (each an
/// ordinary call, with that call's current status). Timestamps are UTC with
/// `Z`, as the API writes them.
pub static SCHEDULED_CALL_JSON: BuiltSql = BuiltSql::new(|| {
    format!(
        "jsonb_build_object(\
        'id', s.id, 'tenant_id', s.tenant_id, 'status', s.status, \
        'to', s.to_number, 'from', s.from_number, 'customer_id', s.customer_id, \
        'run_at', {run_at}, \
        'retry', jsonb_build_object('max_attempts', s.max_attempts, \
            'backoff_seconds', s.backoff_seconds, 'on', to_jsonb(s.retry_on)), \
        'attempts', coalesce((SELECT jsonb_agg(jsonb_build_object(\
                'attempt', a.attempt, 'call_id', a.call_id, 'status', c.status, \
                'started_at', {started_at}, 'ended_at', {ended_at}) \
                ORDER BY a.attempt) \
            FROM scheduled_call_attempts a JOIN calls c ON c.id = a.call_id \
            WHERE a.scheduled_call_id = s.id), '[]'::jsonb), \
        'next_attempt_at', {next_attempt_at}, \
        'last_error', s.last_error, 'version', s.version, 'created_by', s.created_by, \
        'created_at', {created_at}, 'updated_at', {updated_at})",
        run_at = utc_text("s.run_at"),
        started_at = utc_text("a.started_at"),
        ended_at = utc_text("c.ended_at"),
        next_attempt_at = utc_text("s.next_attempt_at"),
        created_at = utc_text("s.created_at"),
        updated_at = utc_text("s.updated_at"),
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_completed_exhausted_and_canceled_are_final() {
        let finals: Vec<_> = ScheduledCallStatus::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .map(ScheduledCallStatus::as_str)
            .collect();
        assert_eq!(finals, ["completed", "exhausted", "canceled"]);
    }

    #[test]
    fn only_busy_no_answer_and_failed_calls_can_be_retried() {
        let retryable: Vec<_> = CallStatus::ALL
            .into_iter()
            .filter_map(RetryOutcome::of)
            .map(RetryOutcome::as_str)
            .collect();
        assert_eq!(retryable, ["busy", "failed", "no-answer"]);
        for outcome in RetryOutcome::ALL {
            let json = serde_json::to_value(outcome).unwrap();
            assert_eq!(json, outcome.as_str());
        }
    }
}
