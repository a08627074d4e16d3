//! The call lifecycle, in one place.
//!
//! Statuses follow the carrier vocabulary:
//!
//! ```text
//! queued ──► ringing ──► in-progress ──► completed
//!    │          │
//!    └──────────┴──► busy | no-answer | failed | canceled
//! ```
//!
//! A carrier may skip `ringing` (queued → in-progress). Terminal statuses
//! are final. Carriers retry and reorder callbacks, so a status the call has
//! already passed (a late `ringing` after `in-progress`) or already has (a
//! duplicate) is not an error: it is acknowledged and changes nothing.

use std::{fmt, str::FromStr};

use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::carrier::new_sid;
use crate::jobs::{self, CarrierSim};
use crate::lifecycle::Transition;
use crate::settings::CarrierMode;

crate::text_enum! {
    /// Which way a call or message goes: `outbound` (from the tenant) or
    /// `inbound` (to one of the tenant's numbers).
    pub enum Direction {
        /// From the tenant to the other party (`outbound`).
        Outbound = "outbound",
        /// From the other party to one of the tenant's numbers (`inbound`).
        Inbound = "inbound",
    }
}

crate::text_enum! {
    /// Where an inbound call was sent when it arrived: to an available agent
    /// (`agent`), or, nobody being free, to voicemail (`voicemail`).
    pub enum Route {
        /// Rung through to the longest-idle available agent (`agent`).
        Agent = "agent",
        /// Nobody could take it: the caller may leave a message (`voicemail`).
        Voicemail = "voicemail",
    }
}

crate::text_enum! {
    /// Where a voicemail's transcription is: `pending → processing →
    /// completed`.
    pub enum TranscriptionStatus {
        /// Waiting for the transcription job.
        Pending = "pending",
        /// The transcriber has it.
        Processing = "processing",
        /// The text is in `transcription`.
        Completed = "completed",
    }
}

crate::text_enum! {
    /// Where a call's recording is: `pending → processing → ready` (the
    /// `recording.process` job), or `failed`. Sent in `call.updated` events'
    /// `recording` once it is ready.
    pub enum RecordingStatus {
        /// The carrier delivered it; waiting for the processing job.
        Pending = "pending",
        /// The media pipeline has it.
        Processing = "processing",
        /// Processed: `url` plays it.
        Ready = "ready",
        /// It could not be processed. The simulated pipeline never fails, so
        /// nothing writes this yet; the column allows it for a real one.
        Failed = "failed",
    }
}

crate::text_enum! {
    /// Who wrote an entry of a call's history: a client's request (`api`), a
    /// carrier callback (`carrier`), the worker (`system`: a scheduled call's
    /// attempt, the sweeper) or the demo seeder (`seed`).
    pub enum EventSource {
        /// A client's request (`api`).
        Api = "api",
        /// A carrier callback (`carrier`).
        Carrier = "carrier",
        /// The worker (`system`).
        System = "system",
        /// The demo seeder (`seed`).
        Seed = "seed",
    }
}

crate::text_enum! {
    /// Where a call is in its lifecycle, in the carrier's vocabulary:
    /// `queued → ringing → in-progress → completed`, or it ends `busy`,
    /// `no-answer`, `failed` or `canceled`. The last five are final.
    pub enum CallStatus {
        /// Created, not ringing yet (`queued`; the carrier's `initiated` too).
        Queued = "queued",
        /// Ringing, not answered yet (`ringing`).
        Ringing = "ringing",
        /// Answered: the call is connected (`in-progress`; `answered` too).
        InProgress = "in-progress",
        /// Answered, then hung up (`completed`). Terminal.
        Completed = "completed",
        /// The called line was busy (`busy`). Terminal.
        Busy = "busy",
        /// The carrier could not connect the call (`failed`). Terminal.
        Failed = "failed",
        /// Rang but was never answered (`no-answer`). Terminal.
        NoAnswer = "no-answer",
        /// Ended before it was answered, e.g. hung up while queued or ringing
        /// (`canceled`; `cancelled` too). Terminal.
        Canceled = "canceled",
    }
}

impl CallStatus {
    /// Whether the call has ended (`completed`, `busy`, `failed`, `no-answer`
    /// or `canceled`): no later status changes it.
    pub fn is_terminal(self) -> bool {
        self.stage() == 3
    }

    /// The statuses of a call still under way: every one that is not
    /// terminal. The sweeper and the reports (their `live` count, and the
    /// rollups, which wait for live calls) select live calls by these, and
    /// `calls_live_idx` covers exactly them.
    pub fn live() -> impl Iterator<Item = CallStatus> {
        Self::ALL.into_iter().filter(|status| !status.is_terminal())
    }

    /// Pre-answer statuses, from which a call can fail to connect.
    pub fn is_pre_answer(self) -> bool {
        matches!(self, CallStatus::Queued | CallStatus::Ringing)
    }

    /// How far along the lifecycle a status is.
    fn stage(self) -> u8 {
        match self {
            CallStatus::Queued => 0,
            CallStatus::Ringing => 1,
            CallStatus::InProgress => 2,
            _ => 3,
        }
    }
}

/// A status that does not parse as a [`CallStatus`]; holds the text as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown call status {0:?}")]
pub struct UnknownCallStatus(pub String);

impl FromStr for CallStatus {
    type Err = UnknownCallStatus;

    /// Accepts the carrier's spelling, case-insensitively (Twilio sends
    /// `in-progress`; some carriers send `in_progress` or `answered`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "initiated" => Ok(CallStatus::Queued),
            "answered" => Ok(CallStatus::InProgress),
            "cancelled" => Ok(CallStatus::Canceled),
            name => CallStatus::from_name(name).ok_or_else(|| UnknownCallStatus(s.to_string())),
        }
    }
}

/// Decides what reporting `to` does to a call in `from`.
pub fn transition(from: CallStatus, to: CallStatus) -> Transition {
    use CallStatus::*;
    if from == to {
        return Transition::Duplicate;
    }
    if from.is_terminal() {
        return Transition::AlreadyEnded;
    }
    if to.stage() < from.stage() {
        return Transition::Stale;
    }
    match (from, to) {
        (Queued, Ringing | InProgress) | (Ringing, InProgress) | (InProgress, Completed) => {
            Transition::Apply
        }
        (Queued | Ringing, Busy | Failed | NoAnswer | Canceled) => Transition::Apply,
        _ => Transition::Illegal,
    }
}

crate::text_enum! {
    /// Agent controls on a live call.
    pub enum Control {
        /// `answer`: a ringing call goes `in-progress`.
        Answer = "answer",
        /// `hold`: puts a call in progress on hold.
        Hold = "hold",
        /// `unhold`: takes a call in progress off hold.
        Unhold = "unhold",
        /// `mute`: mutes a call in progress.
        Mute = "mute",
        /// `unmute`: unmutes a call in progress.
        Unmute = "unmute",
        /// `record`: starts recording a call in progress.
        Record = "record",
        /// `stop-recording`: stops recording a call in progress.
        StopRecording = "stop-recording",
        /// `transfer`: hands a call in progress to another agent or number.
        Transfer = "transfer",
        /// `hangup`: ends the call, `completed` if it was answered, `canceled`
        /// if not.
        Hangup = "hangup",
    }
}

impl FromStr for Control {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s).ok_or(())
    }
}

// A control's entry bears the control's name, yet this is its own set, not
// `Control`: it is what history rows hold, which must stay readable if a
// control is ever renamed, and `answer` and `hangup` write `status` entries.
crate::text_enum! {
    /// What an entry of a call's history records: a status change, a flag
    /// control, a transfer, or a recording the carrier delivered.
    pub enum CallEventKind {
        /// The call changed status (`status`): `from_status` → `to_status`.
        Status = "status",
        /// Put on hold (`hold`).
        Hold = "hold",
        /// Taken off hold (`unhold`).
        Unhold = "unhold",
        /// Muted (`mute`).
        Mute = "mute",
        /// Unmuted (`unmute`).
        Unmute = "unmute",
        /// Recording started (`record`).
        Record = "record",
        /// Recording stopped (`stop-recording`).
        StopRecording = "stop-recording",
        /// Handed to another agent or number (`transfer`).
        Transfer = "transfer",
        /// The carrier delivered a recording of the call (`recording`).
        Recording = "recording",
    }
}

impl From<Control> for CallEventKind {
    /// The entry a control writes: `answer` and `hangup` change the status,
    /// the others are named for themselves.
    fn from(control: Control) -> Self {
        match control {
            Control::Answer | Control::Hangup => Self::Status,
            Control::Hold => Self::Hold,
            Control::Unhold => Self::Unhold,
            Control::Mute => Self::Mute,
            Control::Unmute => Self::Unmute,
            Control::Record => Self::Record,
            Control::StopRecording => Self::StopRecording,
            Control::Transfer => Self::Transfer,
        }
    }
}

/// The live flags a control may flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallFlags {
    /// Whether the call is on hold.
    pub on_hold: bool,
    /// Whether the call is muted.
    pub muted: bool,
    /// Whether the call is being recorded.
    pub recording: bool,
}

/// What a control does when it is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlEffect {
    /// The call moves to this status.
    Status(CallStatus),
    /// Only the flags change.
    Flags(CallFlags),
    /// The call is handed to another agent or number: taken off hold, its
    /// mute and recording left as they were.
    Transfer,
}

/// Why a control is refused (the API answers 409 with this code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ControlRefused {
    /// `answer` on a call that is not ringing (`call_not_ringing`).
    #[error("the call is not ringing")]
    NotRinging,
    /// Any control but `answer` and `hangup` on a call that is not in
    /// progress (`call_not_in_progress`).
    #[error("the call is not in progress")]
    NotInProgress,
    /// Any control on a call that has ended (`call_ended`).
    #[error("the call has already ended")]
    Ended,
    /// `hold` on a call already on hold (`already_on_hold`).
    #[error("the call is already on hold")]
    AlreadyOnHold,
    /// `unhold` on a call that is not on hold (`not_on_hold`).
    #[error("the call is not on hold")]
    NotOnHold,
    /// `mute` on a call already muted (`already_muted`).
    #[error("the call is already muted")]
    AlreadyMuted,
    /// `unmute` on a call that is not muted (`not_muted`).
    #[error("the call is not muted")]
    NotMuted,
    /// `record` on a call already being recorded (`already_recording`).
    #[error("the call is already being recorded")]
    AlreadyRecording,
    /// `stop-recording` on a call that is not being recorded
    /// (`not_recording`).
    #[error("the call is not being recorded")]
    NotRecording,
}

impl ControlRefused {
    /// The error code the API's 409 carries, e.g. `call_not_ringing`.
    pub fn code(self) -> &'static str {
        match self {
            ControlRefused::NotRinging => "call_not_ringing",
            ControlRefused::NotInProgress => "call_not_in_progress",
            ControlRefused::Ended => "call_ended",
            ControlRefused::AlreadyOnHold => "already_on_hold",
            ControlRefused::NotOnHold => "not_on_hold",
            ControlRefused::AlreadyMuted => "already_muted",
            ControlRefused::NotMuted => "not_muted",
            ControlRefused::AlreadyRecording => "already_recording",
            ControlRefused::NotRecording => "not_recording",
        }
    }
}

/// Decides what `control` does to a call in `status` with `flags`.
pub fn control(
    status: CallStatus,
    mut flags: CallFlags,
    control: Control,
) -> Result<ControlEffect, ControlRefused> {
    use CallStatus::*;
    if status.is_terminal() {
        return Err(ControlRefused::Ended);
    }
    // The rest set a flag of a call in progress: which flag, its new value,
    // and the refusal when the flag has that value already.
    let (flag, value, refused) = match control {
        Control::Answer => {
            return match status {
                Ringing => Ok(ControlEffect::Status(InProgress)),
                _ => Err(ControlRefused::NotRinging),
            };
        }
        Control::Hangup => {
            return Ok(ControlEffect::Status(if status == InProgress {
                Completed
            } else {
                Canceled
            }));
        }
        Control::Transfer => {
            return match status {
                InProgress => Ok(ControlEffect::Transfer),
                _ => Err(ControlRefused::NotInProgress),
            };
        }
        Control::Hold => (&mut flags.on_hold, true, ControlRefused::AlreadyOnHold),
        Control::Unhold => (&mut flags.on_hold, false, ControlRefused::NotOnHold),
        Control::Mute => (&mut flags.muted, true, ControlRefused::AlreadyMuted),
        Control::Unmute => (&mut flags.muted, false, ControlRefused::NotMuted),
        Control::Record => (&mut flags.recording, true, ControlRefused::AlreadyRecording),
        Control::StopRecording => (&mut flags.recording, false, ControlRefused::NotRecording),
    };
    if status != InProgress {
        return Err(ControlRefused::NotInProgress);
    }
    if *flag == value {
        return Err(refused);
    }
    *flag = value;
    Ok(ControlEffect::Flags(flags))
}

/// An outbound call to place (see [`NewOutboundCall::place`]).
#[derive(Debug)]
pub struct NewOutboundCall<'a> {
    /// The call's id (a fresh [`crate::ids::new_id`]).
    pub id: Uuid,
    /// The tenant placing it.
    pub tenant_id: Uuid,
    /// The tenant's number it calls from (E.164).
    pub from: &'a str,
    /// The number called (E.164).
    pub to: &'a str,
    /// The customer called, when known.
    pub customer_id: Option<Uuid>,
    /// The agent placing it, when an agent does.
    pub agent_id: Option<Uuid>,
    /// Who placed it, as its history records it: `api` or `system`.
    pub source: EventSource,
    /// Its first history entry's data (the scheduled call and attempt, for
    /// a scheduled call's).
    pub data: &'a serde_json::Value,
}

impl NewOutboundCall<'_> {
    /// Places the call in `tx`: the one way an outbound call starts, for
    /// `POST /v1/calls` and each scheduled-call attempt alike. One statement
    /// writes the row (`queued`, a new `CA…` sid, stamped with the statement
    /// clock) and its first history entry; with the simulated carrier, the
    /// job that plays the call is enqueued in the same transaction. Answers
    /// the call as `returning` renders it ([`crate::records::CALL_COLUMNS`]
    /// for a typed row, [`crate::records::CALL_JSON`] for an event's record).
    pub async fn place<T>(
        &self,
        tx: &mut PgConnection,
        carrier: CarrierMode,
        returning: &(dyn fmt::Display + Sync),
    ) -> Result<T, sqlx::Error>
    where
        T: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
    {
        let statement = format!(
            "WITH inserted AS (
                INSERT INTO calls (id, tenant_id, direction, from_number, to_number, status,
                                   carrier_sid, customer_id, agent_id, created_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, clock_timestamp())
                RETURNING *),
             history AS (
                INSERT INTO call_events (tenant_id, call_id, kind, from_status, to_status, data,
                                         source, occurred_at)
                SELECT tenant_id, id, '{history}', NULL, status, $10, $11, created_at FROM inserted)
             SELECT {returning} FROM inserted",
            history = CallEventKind::Status,
        );
        let call: T = sqlx::query_as(sqlx::AssertSqlSafe(statement))
            .bind(self.id)
            .bind(self.tenant_id)
            .bind(Direction::Outbound.as_str())
            .bind(self.from)
            .bind(self.to)
            .bind(CallStatus::Queued.as_str())
            .bind(new_sid("CA"))
            .bind(self.customer_id)
            .bind(self.agent_id)
            .bind(self.data)
            .bind(self.source.as_str())
            .fetch_one(&mut *tx)
            .await?;
        if carrier == CarrierMode::Simulated {
            let play = CarrierSim::OutboundCall {
                tenant_id: self.tenant_id,
                call_id: self.id,
            };
            jobs::enqueue(&mut *tx, &play).await?;
        }
        Ok(call)
    }
}

#[cfg(test)]
mod tests {
    use super::{CallStatus::*, *};

    #[test]
    fn every_pair_of_statuses_has_the_documented_outcome() {
        let legal = [
            (Queued, Ringing),
            (Queued, InProgress),
            (Queued, Busy),
            (Queued, Failed),
            (Queued, NoAnswer),
            (Queued, Canceled),
            (Ringing, InProgress),
            (Ringing, Busy),
            (Ringing, Failed),
            (Ringing, NoAnswer),
            (Ringing, Canceled),
            (InProgress, Completed),
        ];
        for from in CallStatus::ALL {
            for to in CallStatus::ALL {
                let expected = if from == to {
                    Transition::Duplicate
                } else if from.is_terminal() {
                    Transition::AlreadyEnded
                } else if legal.contains(&(from, to)) {
                    Transition::Apply
                } else if (from, to) == (Ringing, Queued)
                    || (from, to) == (InProgress, Queued)
                    || (from, to) == (InProgress, Ringing)
                {
                    Transition::Stale
                } else {
                    Transition::Illegal
                };
                assert_eq!(transition(from, to), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn answered_calls_cannot_become_busy_or_unanswered() {
        for to in [Busy, NoAnswer, Failed, Canceled] {
            assert_eq!(transition(InProgress, to), Transition::Illegal, "{to}");
        }
    }

    #[test]
    fn terminal_statuses_are_final_and_late_callbacks_are_noops() {
        for from in [Completed, Busy, Failed, NoAnswer, Canceled] {
            for to in CallStatus::ALL {
                assert!(transition(from, to).is_noop(), "{from} -> {to}");
            }
        }
        assert!(transition(InProgress, Ringing).is_noop());
        assert!(!transition(InProgress, Busy).is_noop());
    }

    #[test]
    fn carrier_spellings_parse() {
        assert_eq!("in-progress".parse(), Ok(InProgress));
        assert_eq!("IN_PROGRESS".parse(), Ok(InProgress));
        assert_eq!(" no-answer ".parse(), Ok(NoAnswer));
        assert_eq!("cancelled".parse(), Ok(Canceled));
        assert_eq!("initiated".parse(), Ok(Queued));
        assert!("teleported".parse::<CallStatus>().is_err());
        for s in CallStatus::ALL {
            assert_eq!(s.as_str().parse(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn controls_are_allowed_only_in_their_states() {
        use {Control as C, ControlEffect as E, ControlRefused as R};
        let idle = CallFlags::default();
        let held = CallFlags {
            on_hold: true,
            ..idle
        };
        let rec = CallFlags {
            recording: true,
            ..idle
        };
        let muted = CallFlags {
            muted: true,
            ..idle
        };
        let cases = [
            (Ringing, C::Answer, Ok(E::Status(InProgress))),
            (Queued, C::Answer, Err(R::NotRinging)),
            (InProgress, C::Answer, Err(R::NotRinging)),
            (InProgress, C::Hangup, Ok(E::Status(Completed))),
            (Ringing, C::Hangup, Ok(E::Status(Canceled))),
            (Queued, C::Hangup, Ok(E::Status(Canceled))),
            (InProgress, C::Transfer, Ok(E::Transfer)),
            (Ringing, C::Transfer, Err(R::NotInProgress)),
        ];
        for (status, c, expected) in cases {
            assert_eq!(control(status, idle, c), expected, "{c:?} on {status}");
        }
        // Each flag: the control that sets it, the one that clears it, the
        // flags with it set, and the refusals of setting and clearing twice.
        for (set, clear, with, already, not) in [
            (C::Hold, C::Unhold, held, R::AlreadyOnHold, R::NotOnHold),
            (C::Mute, C::Unmute, muted, R::AlreadyMuted, R::NotMuted),
            (
                C::Record,
                C::StopRecording,
                rec,
                R::AlreadyRecording,
                R::NotRecording,
            ),
        ] {
            assert_eq!(control(InProgress, idle, set), Ok(E::Flags(with)));
            assert_eq!(control(InProgress, with, set), Err(already));
            assert_eq!(control(InProgress, with, clear), Ok(E::Flags(idle)));
            assert_eq!(control(InProgress, idle, clear), Err(not));
            assert_eq!(control(Ringing, idle, set), Err(R::NotInProgress));
            assert_eq!(control(Ringing, with, set), Err(R::NotInProgress));
        }
        for ended in [Completed, Busy, Failed, NoAnswer, Canceled] {
            for c in Control::ALL {
                assert_eq!(
                    control(ended, idle, c),
                    Err(ControlRefused::Ended),
                    "{c:?} on {ended}"
                );
            }
        }
    }
}
