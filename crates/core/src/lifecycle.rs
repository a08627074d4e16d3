//! The vocabulary both lifecycles — a call's ([`crate::calls::transition`])
//! and a message's ([`crate::sms::message_transition`]) — answer a reported
//! status with. Carriers retry and reorder callbacks for both, so both tell
//! a legal step from a duplicate, a late report, or one after the end.

/// What reporting a status does to a call or a message currently in
/// another status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A legal step forward: apply it.
    Apply,
    /// It already has this status.
    Duplicate,
    /// It is already past this status (a late callback).
    Stale,
    /// It has ended; nothing changes it any more.
    AlreadyEnded,
    /// Not a step this lifecycle allows (e.g. `busy` once answered).
    Illegal,
}

impl Transition {
    /// The outcome's name in webhook answers and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Apply => "applied",
            Transition::Duplicate => "duplicate",
            Transition::Stale => "stale",
            Transition::AlreadyEnded => "already_ended",
            Transition::Illegal => "ignored",
        }
    }

    /// Whether the report is acknowledged without change (carriers get 200).
    pub fn is_noop(self) -> bool {
        matches!(
            self,
            Transition::Duplicate | Transition::Stale | Transition::AlreadyEnded
        )
    }
}
