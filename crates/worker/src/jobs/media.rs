//! `voicemail.transcribe` and `recording.process`: a deterministic stand-in
//! for a speech-to-text service and a media pipeline. Each takes time in
//! proportion to the audio's length (scaled by the carrier speed factor),
//! produces the same result for the same recording every time, updates the
//! record and publishes an event. Both are idempotent: a finished record is
//! left alone.

use std::{sync::Arc, time::Duration};

use rand::{Rng, SeedableRng, seq::IndexedRandom};
use rand_chacha::ChaCha8Rng;
use switchboard_core::{
    calls::{RecordingStatus, TranscriptionStatus},
    events::EventType,
    jobs::{RecordingProcess, VoicemailTranscribe},
    records::VOICEMAIL_JSON,
};
use uuid::Uuid;

use crate::{context::Ctx, error::JobResult, runner::Handler};

const PHRASES: [&str; 12] = [
    "Hi, this is a message about my recent order.",
    "Could you call me back when you get a chance?",
    "I have a question about my last invoice.",
    "The delivery arrived but one item was missing.",
    "I'd like to change my appointment to next week.",
    "Please update the email address on my account.",
    "Thanks for your help earlier, everything works now.",
    "I'm calling to follow up on the quote you sent.",
    "My number is the one I'm calling from.",
    "It's not urgent, any time tomorrow is fine.",
    "I was charged twice and would like a refund.",
    "Let me know if you need anything else from me.",
];

/// Processing time for `seconds` of audio: about a tenth of real time, at
/// most 20 s, divided by the speed factor.
fn processing_time(ctx: &Ctx, seconds: i32) -> Duration {
    let real = (f64::from(seconds.max(1)) * 0.1).min(20.0);
    Duration::from_secs_f64(real / ctx.settings.carrier_speed)
}

/// The transcript of a recording: the same id always gives the same text.
pub fn transcript(id: Uuid, seconds: i32) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(id.as_u64_pair().1);
    let sentences = (seconds / 10).clamp(1, 6) as usize;
    (0..sentences)
        .map(|_| *PHRASES.choose(&mut rng).unwrap_or(&PHRASES[0]))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A kind of media record these jobs finish: its table, the column saying
/// where it is, and that column's names for waiting and being worked on
/// (from the record's status enum, so a job cannot misspell one).
pub struct Media {
    /// The table.
    pub table: &'static str,
    status: &'static str,
    pending: &'static str,
    processing: &'static str,
}

impl Media {
    /// The condition that a row (columns qualified by `row`, e.g. `r.`, or
    /// not) is unfinished: pending, or processing (again, if its worker
    /// died). Its job claims such a row; the sweeper re-drives one that has
    /// no job.
    pub fn unfinished(&self, row: &str) -> String {
        let Media {
            status,
            pending,
            processing,
            ..
        } = self;
        format!("{row}{status} IN ('{pending}', '{processing}')")
    }
}

/// Voicemails, transcribed by `voicemail.transcribe`.
pub const VOICEMAILS: Media = Media {
    table: "voicemails",
    status: "transcription_status",
    pending: TranscriptionStatus::Pending.as_str(),
    processing: TranscriptionStatus::Processing.as_str(),
};

/// Call recordings, processed by `recording.process`.
pub const RECORDINGS: Media = Media {
    table: "recordings",
    status: "status",
    pending: RecordingStatus::Pending.as_str(),
    processing: RecordingStatus::Processing.as_str(),
};

/// Claims the record `id` of `media` for processing: pending, or processing
/// again (a worker died mid-way), becomes processing. Returns the audio's
/// length in seconds, or `None` when the record is finished already or gone.
async fn claim(ctx: &Ctx, media: Media, tenant_id: Uuid, id: Uuid) -> sqlx::Result<Option<i32>> {
    let Media {
        table,
        status,
        processing,
        ..
    } = media;
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} SET {status} = '{processing}'
         WHERE tenant_id = $1 AND id = $2 AND {unfinished}
         RETURNING duration_seconds",
        unfinished = media.unfinished(""),
    )))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(&ctx.db)
    .await
}

/// Publishes (and counts) a record this run finished, as `event`; `None`,
/// a record another run finished first, is neither.
async fn finished(
    ctx: &Ctx,
    tenant_id: Uuid,
    record: Option<serde_json::Value>,
    (event, counter): (EventType, &'static str),
) {
    if let Some(record) = record {
        metrics::counter!(counter).increment(1);
        ctx.events.publish_new(tenant_id, event, &record).await;
    }
}

impl Handler for VoicemailTranscribe {
    async fn handle(&self, ctx: &Arc<Ctx>) -> JobResult {
        let claimed = claim(ctx, VOICEMAILS, self.tenant_id, self.voicemail_id);
        let Some(seconds) = claimed.await? else {
            return Ok(());
        };
        tokio::time::sleep(processing_time(ctx, seconds)).await;
        let text = transcript(self.voicemail_id, seconds);
        let voicemail: Option<serde_json::Value> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "UPDATE voicemails SET transcription_status = $4, transcription = $3
                 WHERE tenant_id = $1 AND id = $2 AND transcription_status = $5
                 RETURNING {VOICEMAIL_JSON}"
            )))
            .bind(self.tenant_id)
            .bind(self.voicemail_id)
            .bind(&text)
            .bind(TranscriptionStatus::Completed)
            .bind(TranscriptionStatus::Processing)
            .fetch_optional(&ctx.db)
            .await?;
        let done = (
            EventType::VoicemailTranscribed,
            "voicemails_transcribed_total",
        );
        finished(ctx, self.tenant_id, voicemail, done).await;
        Ok(())
    }
}

impl Handler for RecordingProcess {
    async fn handle(&self, ctx: &Arc<Ctx>) -> JobResult {
        let claimed = claim(ctx, RECORDINGS, self.tenant_id, self.recording_id);
        let Some(seconds) = claimed.await? else {
            return Ok(());
        };
        // Encoding work: a fraction of the audio's length.
        let jitter = rand::rng().random_range(0.9..1.1);
        tokio::time::sleep(processing_time(ctx, seconds).mul_f64(jitter * 0.5)).await;
        let recording: Option<serde_json::Value> = sqlx::query_scalar(
            "UPDATE recordings SET status = $3, processed_at = now()
             WHERE tenant_id = $1 AND id = $2 AND status = $4
             RETURNING jsonb_build_object('call_id', call_id, 'recording', jsonb_build_object(
                 'id', id, 'status', status, 'url', url, 'duration_seconds', duration_seconds,
                 'processed_at', processed_at))",
        )
        .bind(self.tenant_id)
        .bind(self.recording_id)
        .bind(RecordingStatus::Ready)
        .bind(RecordingStatus::Processing)
        .fetch_optional(&ctx.db)
        .await?;
        let done = (EventType::CallUpdated, "recordings_processed_total");
        finished(ctx, self.tenant_id, recording, done).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcripts_are_deterministic_and_scale_with_length() {
        let id = Uuid::from_u128(7);
        assert_eq!(transcript(id, 30), transcript(id, 30));
        assert!(transcript(id, 60).len() > transcript(id, 5).len());
        assert_ne!(transcript(id, 30), transcript(Uuid::from_u128(8), 30));
    }
}
