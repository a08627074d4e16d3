//! SMS encoding and segment counting, as carriers bill it.
//!
//! A body made only of GSM 03.38 characters is sent as GSM-7: 160 septets
//! in one segment, 153 per segment once concatenated (the UDH takes 7).
//! Characters of the extension table (`^ { } \ [ ~ ] | €` and form feed)
//! take two septets. Anything else forces UCS-2: 70 UTF-16 units in one
//! segment, 67 per segment once concatenated.

use crate::lifecycle::Transition;

crate::text_enum! {
    /// The character encoding a body is sent in, which sets its segment size:
    /// `GSM-7` or `UCS-2`.
    pub enum Encoding {
        /// The GSM 03.38 7-bit alphabet: 160 septets in one segment, 153 per
        /// segment once concatenated.
        Gsm7 = "GSM-7",
        /// UTF-16, for any character outside GSM 03.38: 70 units in one segment,
        /// 67 per segment once concatenated.
        Ucs2 = "UCS-2",
    }
}

/// How a body will be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segmentation {
    /// GSM-7 when every character is in GSM 03.38, else UCS-2.
    pub encoding: Encoding,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    pub units: usize,
    /// The segments it is sent (and billed) as; at least 1, even when empty.
    pub segments: usize,
}

const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM7_EXTENSION: &str = "\u{c}^{}\\[~]|€";

fn gsm7_septets(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// The encoding, size and segment count of `body`.
pub fn segment(body: &str) -> Segmentation {
    let septets: Option<usize> = body.chars().map(gsm7_septets).sum();
    match septets {
        Some(units) => Segmentation {
            encoding: Encoding::Gsm7,
            units,
            segments: count(units, 160, 153),
        },
        None => {
            let units = body.encode_utf16().count();
            Segmentation {
                encoding: Encoding::Ucs2,
                units,
                segments: count(units, 70, 67),
            }
        }
    }
}

fn count(units: usize, single: usize, multi: usize) -> usize {
    if units <= single {
        1
    } else {
        units.div_ceil(multi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `unit` repeated each given number of times takes the segments given.
    fn assert_segments(unit: &str, cases: &[(usize, usize)]) {
        for &(count, segments) in cases {
            assert_eq!(
                segment(&unit.repeat(count)).segments,
                segments,
                "{count} × {unit:?}"
            );
        }
    }

    #[test]
    fn plain_gsm7_fits_160_per_segment_then_153() {
        assert_eq!(segment("").segments, 1);
        assert_eq!(
            segment(&"a".repeat(160)),
            Segmentation {
                encoding: Encoding::Gsm7,
                units: 160,
                segments: 1
            }
        );
        assert_segments("a", &[(161, 2), (306, 2), (307, 3)]);
    }

    #[test]
    fn extension_characters_take_two_septets() {
        let s = segment("price: 5€ [approx]");
        assert_eq!(s.encoding, Encoding::Gsm7);
        assert_eq!(s.units, 18 + 3);
        assert_segments("€", &[(80, 1), (81, 2)]);
    }

    #[test]
    fn anything_outside_gsm_forces_ucs2() {
        let s = segment("Hello 😀");
        assert_eq!(s.encoding, Encoding::Ucs2);
        assert_eq!(s.units, 8); // the emoji is a surrogate pair
        assert_segments("ж", &[(70, 1), (71, 2), (134, 2), (135, 3)]);
    }
}

crate::text_enum! {
    /// An SMS's lifecycle: `queued → sending → sent → delivered | undelivered`,
    /// `failed` from any state before delivery; `received` for inbound messages.
    pub enum MessageStatus {
        /// Accepted, waiting for the `sms.send` job to hand it to the carrier.
        Queued = "queued",
        /// Handed to the carrier (its carrier SID recorded), not yet reported
        /// `sent`.
        Sending = "sending",
        /// The carrier sent it on to the network; no delivery receipt yet.
        Sent = "sent",
        /// The delivery receipt says it reached the handset.
        Delivered = "delivered",
        /// The delivery receipt says it did not reach the handset (e.g.
        /// unreachable, error `30003`).
        Undelivered = "undelivered",
        /// It was not sent: refused before hand-over (the recipient opted out, a
        /// campaign template lacked a value) or reported `failed` by the carrier.
        Failed = "failed",
        /// An inbound message, received from the carrier.
        Received = "received",
    }
}

impl MessageStatus {
    /// Whether the status is final: `delivered`, `undelivered`, `failed` or
    /// `received`.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            MessageStatus::Delivered
                | MessageStatus::Undelivered
                | MessageStatus::Failed
                | MessageStatus::Received
        )
    }

    /// The statuses of a message the carrier has not settled: every one
    /// that is not terminal (`messages_unsettled_idx` covers exactly them).
    pub fn unsettled() -> impl Iterator<Item = MessageStatus> {
        Self::ALL.into_iter().filter(|status| !status.is_terminal())
    }

    /// The terminal statuses: a message in one is settled for good.
    pub fn settled() -> impl Iterator<Item = MessageStatus> {
        Self::ALL.into_iter().filter(|status| status.is_terminal())
    }

    fn stage(self) -> u8 {
        match self {
            MessageStatus::Queued => 0,
            MessageStatus::Sending => 1,
            MessageStatus::Sent => 2,
            _ => 3,
        }
    }
}

impl std::str::FromStr for MessageStatus {
    type Err = ();

    /// Accepts the carrier's vocabulary (Twilio's `accepted` and `scheduled`
    /// mean queued; `receiving` means received).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "queued" | "accepted" | "scheduled" => Ok(MessageStatus::Queued),
            "sending" => Ok(MessageStatus::Sending),
            "sent" => Ok(MessageStatus::Sent),
            "delivered" => Ok(MessageStatus::Delivered),
            "undelivered" => Ok(MessageStatus::Undelivered),
            "failed" => Ok(MessageStatus::Failed),
            "received" | "receiving" => Ok(MessageStatus::Received),
            _ => Err(()),
        }
    }
}

/// What reporting `to` does to an outbound message in `from`; the same
/// vocabulary as calls, since carriers retry and reorder SMS receipts too.
pub fn message_transition(from: MessageStatus, to: MessageStatus) -> Transition {
    use MessageStatus::*;
    if from == to {
        return Transition::Duplicate;
    }
    if from.is_terminal() {
        return Transition::AlreadyEnded;
    }
    if to == Received {
        return Transition::Illegal;
    }
    if to.stage() < from.stage() {
        return Transition::Stale;
    }
    match (from, to) {
        (Queued, Sending | Sent | Delivered | Undelivered | Failed)
        | (Sending, Sent | Delivered | Undelivered | Failed)
        | (Sent, Delivered | Undelivered | Failed) => Transition::Apply,
        _ => Transition::Illegal,
    }
}

crate::text_enum! {
    /// Where a bulk campaign is: `pending → running → completed`.
    pub enum CampaignStatus {
        /// Created; its audience is not resolved yet.
        Pending = "pending",
        /// Its messages exist; some are still on their way.
        Running = "running",
        /// None of its messages is on its way any more.
        Completed = "completed",
    }
}

#[cfg(test)]
mod status_tests {
    use super::{MessageStatus::*, *};

    #[test]
    fn receipts_move_messages_forward_only() {
        assert_eq!(message_transition(Queued, Sending), Transition::Apply);
        assert_eq!(message_transition(Sending, Sent), Transition::Apply);
        assert_eq!(message_transition(Sent, Delivered), Transition::Apply);
        assert_eq!(message_transition(Sent, Undelivered), Transition::Apply);
        assert_eq!(message_transition(Queued, Failed), Transition::Apply);
        assert_eq!(
            message_transition(Queued, Delivered),
            Transition::Apply,
            "carriers may skip steps"
        );
        assert_eq!(message_transition(Sent, Sending), Transition::Stale);
        assert_eq!(message_transition(Sent, Sent), Transition::Duplicate);
        assert_eq!(
            message_transition(Delivered, Failed),
            Transition::AlreadyEnded
        );
        assert_eq!(
            message_transition(Delivered, Sent),
            Transition::AlreadyEnded
        );
        assert_eq!(message_transition(Queued, Received), Transition::Illegal);
        for from in MessageStatus::ALL {
            assert!(message_transition(Received, from).is_noop() || from == Received);
        }
    }

    #[test]
    fn carrier_vocabulary_parses() {
        assert_eq!("accepted".parse(), Ok(Queued));
        assert_eq!("DELIVERED".parse(), Ok(Delivered));
        assert!("lost".parse::<MessageStatus>().is_err());
        for s in MessageStatus::ALL {
            assert_eq!(s.as_str().parse(), Ok(s));
        }
    }
}
