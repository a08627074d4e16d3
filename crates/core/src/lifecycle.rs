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
    /// What a carrier webhook answers for it ([`AckResult`]).
    pub fn result(self) -> AckResult {
        match self {
            Transition::Apply => AckResult::Applied,
            Transition::Duplicate => AckResult::Duplicate,
            Transition::Stale => AckResult::Stale,
            Transition::AlreadyEnded => AckResult::AlreadyEnded,
            Transition::Illegal => AckResult::Ignored,
        }
    }

    /// The outcome's name in webhook answers and in the transition
    /// metrics' `result` label: its [`AckResult`]'s.
    pub fn as_str(self) -> &'static str {
        self.result().as_str()
    }

    /// Whether the report is acknowledged without change (carriers get 200).
    pub fn is_noop(self) -> bool {
        matches!(
            self,
            Transition::Duplicate | Transition::Stale | Transition::AlreadyEnded
        )
    }
}

crate::text_enum! {
    /// What a carrier webhook did with the report or the traffic it carried:
    /// how a reported status was taken, or `created` for inbound traffic.
    pub enum AckResult {
        /// The reported status was applied.
        Applied = "applied",
        /// Already known: the report repeats the current status, or the call,
        /// message or recording exists (a retried delivery).
        Duplicate = "duplicate",
        /// A late report of a status already passed; nothing changed.
        Stale = "stale",
        /// The call or message has ended; nothing changed.
        AlreadyEnded = "already_ended",
        /// A step the lifecycle does not allow (e.g. `busy` once answered);
        /// nothing changed.
        Ignored = "ignored",
        /// The inbound call, message, voicemail or recording was created.
        Created = "created",
    }
}
