//! Small HTTP helpers the tests share.

use reqwest::{Client, RequestBuilder, Response};
use serde_json::Value;

/// GETs `url` and returns its body as text (whatever the status).
pub async fn get_text(client: &Client, url: &str) -> String {
    client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: body: {e}"))
}

/// Sends `request` and returns its body as JSON (whatever the status).
pub async fn send_json(request: RequestBuilder) -> Value {
    let response = request.send().await.expect("request sent");
    let (status, url) = (response.status(), response.url().clone());
    let text = response.text().await.expect("response body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("{url}: {status}, not JSON: {text}"))
}

/// The signature the carrier puts on `params` with the tenant's
/// `auth_token`, over `signed_url` (the public URL the carrier knows).
pub fn carrier_signature(auth_token: &str, signed_url: &str, params: &[(&str, &str)]) -> String {
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    switchboard_core::carrier::sign(auth_token, signed_url, &owned)
}

/// POSTs `params` form-encoded to `url` the way the carrier does, with
/// `signature` as its signature header (or none, for the refusals).
pub async fn post_carrier_form(
    client: &Client,
    url: &str,
    signature: Option<&str>,
    params: &[(&str, &str)],
) -> Response {
    let mut request = client.post(url).form(params);
    if let Some(signature) = signature {
        request = request.header(switchboard_core::carrier::SIGNATURE_HEADER, signature);
    }
    request
        .send()
        .await
        .unwrap_or_else(|e| panic!("carrier POST {url}: {e}"))
}

/// The value of the first sample in a Prometheus text exposition whose
/// line starts with `prefix` (name and labels); 0 when there is none, as
/// for a counter never incremented.
pub fn metric_value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().expect("a sample value"))
}
