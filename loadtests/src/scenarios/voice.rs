//! Voice calls (seed 000, scenario 2 "Voice Call Load"): 15 agents each on
//! a call at a time — originate, the carrier rings and answers, hold,
//! unhold, record, talk, hang up — then the carrier's late `completed`
//! callback (a no-op by design) and the recording callback. The stack runs
//! with `SWITCHBOARD_CARRIER=external` and this suite plays the carrier, so
//! webhook → socket latencies are exact. Talk time is compressed from the
//! seed's 2–5 minutes to seconds (the API's work per call is the same).

use std::time::Duration;

use goose::prelude::*;

use super::{agent, log_in, workday::voice_call};
use crate::{
    context::{Call, current, signed_form},
    profile::Shape,
};

pub fn scenario(_shape: &Shape) -> goose::goose::Scenario {
    scenario!("voice")
        .set_wait_time(Duration::from_millis(500), Duration::from_millis(1_500))
        .unwrap_or_else(|_| unreachable!("a valid wait time"))
        .register_transaction(transaction!(on_start).set_name("log in").set_on_start())
        .register_transaction(transaction!(call).set_name("call"))
}

async fn on_start(user: &mut GooseUser) -> TransactionResult {
    log_in(user, true).await
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
