//! Verify before measuring (as TechEmpower does): a short correctness pass
//! against the target. A target that fails it is not measured: a fast
//! wrong answer is not a result.
//!
//! 1. A call's lifecycle produces its events on a Socket.IO socket
//!    (created → ringing → in-progress → completed), and its history holds them.
//! 2. An SMS reaches `delivered` (seen on the socket).
//! 3. A carrier webhook with a bad signature is refused with 403.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    context::{Tenant, client, get_json, login, post_json, signed_form},
    sio,
    stack::{Carrier, Endpoints},
};

const WAIT: Duration = Duration::from_secs(30);

/// The simulator's number that always answers (and talks for 30 s).
const ANSWERING_NUMBER: &str = "+12025550904";
/// The simulator delivers every SMS to this number (README, "The carrier simulator").
const DELIVERING_NUMBER: &str = "+12025550907";

/// One check of the verification pass.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    /// What it checks (`SMS reaches delivered`, ...).
    pub name: String,
    /// Whether the target passed it.
    pub passed: bool,
    /// What it saw when it passed; why it failed otherwise.
    pub detail: String,
    /// How long the check took, in milliseconds.
    pub millis: u64,
}

/// The verification pass's outcome: a target that fails it is not measured
/// (exit 1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verification {
    /// Whether every check passed.
    pub passed: bool,
    /// Every check, in the order run.
    pub checks: Vec<Check>,
}

/// Runs every check; never fails early, so the report shows them all.
pub async fn verify(endpoints: &Endpoints, tenant: &Tenant) -> Verification {
    let mut checks = Vec::new();
    for (name, result) in [
        ("call lifecycle → socket events", {
            let started = Instant::now();
            (call_lifecycle(endpoints, tenant).await, started)
        }),
        ("SMS reaches delivered", {
            let started = Instant::now();
            (sms_delivered(endpoints, tenant).await, started)
        }),
        ("bad carrier signature → 403", {
            let started = Instant::now();
            (bad_signature(endpoints, tenant).await, started)
        }),
    ]
    .map(|(name, (result, started))| (name, (result, started.elapsed())))
    {
        let (result, took) = result;
        checks.push(Check {
            name: name.to_string(),
            passed: result.is_ok(),
            detail: match result {
                Ok(detail) => detail,
                Err(e) => format!("{e:#}"),
            },
            millis: took.as_millis() as u64,
        });
    }
    Verification {
        passed: checks.iter().all(|c| c.passed),
        checks,
    }
}

/// Whether the suite must send the carrier's callbacks itself: with an
/// `external` carrier, or when no worker (so no simulator) answers.
pub fn plays_carrier(endpoints: &Endpoints) -> bool {
    endpoints.carrier == Carrier::External || endpoints.worker.is_none()
}

/// Posts a signed carrier webhook, as the carrier `tenant` uses; `what`
/// names it in the error when it is refused.
async fn carrier_post(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    tenant: &Tenant,
    (path, what): (&str, &str),
    params: &[(&str, String)],
) -> anyhow::Result<()> {
    let (body, signature) = signed_form(&endpoints.public_url, path, tenant.carrier_token, params);
    let response = http
        .post(format!("{}{path}", endpoints.api))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(switchboard_core::carrier::SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        eprintln!("  verify: {path} answered {status}: {body:.300}");
        bail!("{what} answered {status}");
    }
    Ok(())
}

async fn call_lifecycle(endpoints: &Endpoints, tenant: &Tenant) -> anyhow::Result<String> {
    let http = client()?;
    let token = login(&http, &endpoints.api, &tenant.agents[0]).await?;
    let mut socket = sio::connect(&endpoints.realtime, &token).await?;
    // The simulator answers this number every time (its "magic numbers");
    // playing the carrier ourselves, any customer will do.
    let phone = if plays_carrier(endpoints) {
        tenant.customers[0].1.clone()
    } else {
        ANSWERING_NUMBER.to_string()
    };
    let calls = format!("{}/v1/calls", endpoints.api);
    let call = post_json(&http, &calls, &token, &json!({ "to": phone }))
        .await
        .context("originating a call")?;
    let id = call["id"].as_str().context("call id")?.to_string();
    let sid = call["carrier_sid"].as_str().unwrap_or_default().to_string();
    socket
        .wait_for("call:created", WAIT, |e| e.subject.is(&id, None))
        .await?;
    for status in ["ringing", "in-progress"] {
        if plays_carrier(endpoints) {
            let what = format!("the {status} callback");
            let webhook = ("/webhooks/carrier/voice/status", what.as_str());
            let params = [
                ("CallSid", sid.clone()),
                ("CallStatus", status.to_string()),
                ("From", tenant.numbers[0].clone()),
                ("To", phone.clone()),
            ];
            carrier_post(&http, endpoints, tenant, webhook, &params).await?;
        }
        socket
            .wait_for("call:status", WAIT, |e| e.subject.is(&id, Some(status)))
            .await
            .with_context(|| format!("waiting for {status}"))?;
    }
    let hangup = http
        .post(format!("{}/v1/calls/{id}/hangup", endpoints.api))
        .bearer_auth(&token)
        .send()
        .await?;
    // A fast simulator may end the call first (409 call_ended): the
    // completed status must arrive on the socket either way.
    if !hangup.status().is_success() && hangup.status() != reqwest::StatusCode::CONFLICT {
        bail!("hangup answered {}", hangup.status());
    }
    socket
        .wait_for("call:status", WAIT, |e| {
            e.subject.is(&id, Some("completed"))
        })
        .await
        .context("waiting for completed")?;
    let events = format!("{}/v1/calls/{id}/events", endpoints.api);
    let history = get_json(&http, &events, &token).await?;
    let entries = history["data"]
        .as_array()
        .or_else(|| history.as_array())
        .map(Vec::len)
        .unwrap_or(0);
    if entries < 3 {
        bail!("the call's history holds {entries} entries, expected at least 3");
    }
    Ok(format!(
        "call {id}: created, ringing, in-progress, completed on the socket; {entries} history entries{}",
        if plays_carrier(endpoints) {
            " (the suite played the carrier)"
        } else {
            " (the simulator played the carrier)"
        }
    ))
}

async fn sms_delivered(endpoints: &Endpoints, tenant: &Tenant) -> anyhow::Result<String> {
    if endpoints.carrier == Carrier::Simulated && endpoints.worker.is_none() {
        bail!(
            "worker not available: no worker answered /health, so nothing sends SMS \
             (--worker was not given with --host, or points nowhere)"
        );
    }
    let http = client()?;
    let token = login(&http, &endpoints.api, &tenant.agents[1]).await?;
    let mut socket = sio::connect(&endpoints.realtime, &token).await?;
    // The simulator's magic number that always delivers: a seeded
    // customer's number is undelivered or failed 3 % of the time, which
    // would fail the check with nothing wrong.
    let messages = format!("{}/v1/messages", endpoints.api);
    let body =
        json!({ "to": DELIVERING_NUMBER, "body": "Verification: your appointment is confirmed." });
    let message = post_json(&http, &messages, &token, &body)
        .await
        .context("sending an SMS")?;
    let id = message["id"].as_str().context("message id")?.to_string();
    let started = Instant::now();
    if endpoints.carrier == Carrier::External {
        // A carrier reports on a message only once it has been handed it:
        // the worker's `sms.send` gives the message the MessageSid the
        // carrier knows it by (the one in the create answer is replaced).
        let sid = loop {
            let url = format!("{}/v1/messages/{id}", endpoints.api);
            let current = get_json(&http, &url, &token)
                .await
                .context("reading the SMS back")?;
            if current["status"] != "queued"
                && let Some(sid) = current["carrier_sid"].as_str()
            {
                break sid.to_string();
            }
            if started.elapsed() > WAIT {
                bail!("the SMS was not handed to the carrier within {WAIT:?}: {current}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        for status in ["sent", "delivered"] {
            let what = format!("the {status} receipt");
            let webhook = ("/webhooks/carrier/sms/status", what.as_str());
            let params = [
                ("MessageSid", sid.clone()),
                ("MessageStatus", status.to_string()),
            ];
            carrier_post(&http, endpoints, tenant, webhook, &params).await?;
        }
    }
    socket
        .wait_for("message:status", WAIT, |e| {
            e.subject.is(&id, Some("delivered"))
        })
        .await
        .map_err(|e| anyhow!("{e}: the message never reached delivered"))?;
    Ok(format!(
        "message {id} delivered in {} ms",
        started.elapsed().as_millis()
    ))
}

/// Posts the call `sid`'s `completed` callback under a forged signature:
/// the status it was answered with.
async fn forged_callback(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    tenant: &Tenant,
    sid: String,
) -> anyhow::Result<reqwest::StatusCode> {
    let path = "/webhooks/carrier/voice/status";
    let params = [("CallSid", sid), ("CallStatus", "completed".to_string())];
    let (body, _) = signed_form(&endpoints.public_url, path, tenant.carrier_token, &params);
    Ok(http
        .post(format!("{}{path}", endpoints.api))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            switchboard_core::carrier::SIGNATURE_HEADER,
            "bm90IGEgc2lnbmF0dXJl",
        )
        .body(body)
        .send()
        .await?
        .status())
}

async fn bad_signature(endpoints: &Endpoints, tenant: &Tenant) -> anyhow::Result<String> {
    let http = client()?;
    let unknown = "CA00000000000000000000000000000000".to_string();
    let status = forged_callback(&http, endpoints, tenant, unknown).await?;
    // An unknown CallSid may be a 404 before the signature is looked at:
    // forge one for a real call too.
    let http2 = client()?;
    let token = login(&http2, &endpoints.api, &tenant.agents[2]).await?;
    let calls = format!("{}/v1/calls", endpoints.api);
    let body = json!({ "to": tenant.customers[2].1 });
    let call = post_json(&http2, &calls, &token, &body).await?;
    let sid = call["carrier_sid"].as_str().unwrap_or_default().to_string();
    let forged = forged_callback(&http2, endpoints, tenant, sid).await?;
    if forged != reqwest::StatusCode::FORBIDDEN {
        bail!("a forged callback for a real call answered {forged}, expected 403");
    }
    // Tidy up: the call stays queued otherwise (it ends with the hangup).
    let _ = http2
        .post(format!(
            "{}/v1/calls/{}/hangup",
            endpoints.api,
            call["id"].as_str().unwrap_or_default()
        ))
        .bearer_auth(&token)
        .send()
        .await;
    Ok(format!(
        "forged signature refused with 403 (unknown CallSid answered {status})"
    ))
}
