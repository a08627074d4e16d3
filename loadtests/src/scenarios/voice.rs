//! Voice calls (seed 000, scenario 2 "Voice Call Load"): 15 agents each on
//! a call at a time — originate, the carrier rings and answers, hold,
//! unhold, record, talk, hang up — then the carrier's late `completed`
//! callback (a no-op by design) and the recording callback. The stack runs
//! with `SWITCHBOARD_CARRIER=external` and this suite plays the carrier, so
//! webhook → socket latencies are exact. Talk time is compressed from the
//! seed's 2–5 minutes to seconds (the API's work per call is the same).

use goose::prelude::*;

use super::{About, LoadScenario, agent, agents, thinking, workday::voice_call};
use crate::{
    context::{Call, current, signed_form},
    profile::{Load, Shape, Tier},
    stack::Carrier,
    thresholds::{Rule, rule},
};

/// Seed 000's scenario 2.
pub struct Voice;

impl LoadScenario for Voice {
    fn about(&self) -> About {
        // This suite sends the carrier's callbacks itself (and times them).
        About::new(
            "voice",
            "seed 000 §Scenario 2 Voice Call Load (15 concurrent calls)",
        )
        .played_by(Carrier::External)
    }

    fn load(&self, _tier: Tier) -> Load {
        Load::users(15)
    }

    fn rules(&self, tier: Tier) -> Vec<Rule> {
        match tier {
            Tier::Seed => vec![
                rule("http.p95_ms < 1_000", "seed 000: API response time"),
                rule("http.error_pct < 1", "seed 000 §2: all calls initiated"),
                super::workday::socket_event_time(),
            ],
            Tier::Goal => super::workday::goal_rules(),
        }
    }

    fn goose(&self, _shape: &Shape) -> goose::goose::Scenario {
        thinking(agents("voice", true), 500, 1_500)
            .register_transaction(transaction!(call).set_name("call"))
    }
}

async fn call(user: &mut GooseUser) -> TransactionResult {
    voice_call(user).await?;
    // The recording of the last call this user made, as the carrier posts it.
    let me = agent(user)?;
    let ctx = current();
    let tenant = ctx.tenant(me.tenant);
    let path = "/v1/calls?limit=1";
    let (_, list) = Call::get(path, "GET /v1/calls", &me.token)
        .send(user)
        .await?;
    let Some(sid) = list["data"][0]["carrier_sid"].as_str().map(str::to_string) else {
        return Ok(());
    };
    let form = signed_form(
        &ctx.endpoints.public_url,
        "/webhooks/carrier/voice/recording",
        tenant.carrier_token,
        &[
            ("CallSid", sid),
            ("RecordingSid", switchboard_core::carrier::new_sid("RE")),
            (
                "RecordingUrl",
                "https://carrier.invalid/recordings/load.wav".to_string(),
            ),
            ("RecordingDuration", rand::random_range(20..300).to_string()),
        ],
    );
    Call::webhook(
        "/webhooks/carrier/voice/recording",
        "POST /webhooks/carrier/voice/recording",
        form,
    )
    .send(user)
    .await?;
    Ok(())
}
