//! The carrier's webhook signature, computed the way Twilio computes
//! `X-Twilio-Signature`: HMAC-SHA1, keyed by the account's auth token, over
//! the full public URL followed by every POST parameter name and value
//! sorted by name; base64-encoded. The API verifies it; the carrier
//! simulator signs with it.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

/// A fresh carrier id in the carrier's shape: a two-letter prefix (`CA`
/// calls, `SM` messages, `RE` recordings) and 32 lowercase hex digits.
pub fn new_sid(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// The header carriers put the signature in.
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> HmacSha1 {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // By name, then by value for repeated names (as Twilio's libraries do).
    sorted.sort();
    let mut mac = HmacSha1::new_from_slice(auth_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// The signature for a POST of `params` to `url`.
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(mac(auth_token, url, params).finalize().into_bytes())
}

/// Checks a signature in constant time.
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let Ok(expected) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    mac(auth_token, url, params).verify_slice(&expected).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Vectors computed independently with Twilio's own helper library
    /// (`pip install twilio==9.13.0`):
    ///
    /// ```python
    /// from twilio.request_validator import RequestValidator
    /// RequestValidator("12345").compute_signature(
    ///     "https://mycompany.com/myapp.php?foo=1&bar=2",
    ///     {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
    ///      "From": "+12349013030", "To": "+18005551212"})
    /// # '0/KCTR6DLpKmkAf8muzZqo1nDgQ=' (also the example in Twilio's security docs)
    /// RequestValidator("acme-carrier-token").compute_signature(
    ///     "http://127.0.0.1:8080/webhooks/carrier/voice/status",
    ///     {"CallSid": "CAfeedface", "CallStatus": "in-progress", "From": "+12025550100",
    ///      "To": "+13125550177", "AccountSid": "ACacme", "CallDuration": "0"})
    /// # 'q2NZ5Uwu5kBfr+Tb42yy8XR72Uw='
    /// ```
    #[test]
    fn signatures_match_twilios_own_library() {
        let docs = params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(sign("12345", url, &docs), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(verify("12345", url, &docs, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));

        let status = params(&[
            ("To", "+13125550177"),
            ("CallStatus", "in-progress"),
            ("AccountSid", "ACacme"),
            ("CallSid", "CAfeedface"),
            ("From", "+12025550100"),
            ("CallDuration", "0"),
        ]);
        let url = "http://127.0.0.1:8080/webhooks/carrier/voice/status";
        assert_eq!(
            sign("acme-carrier-token", url, &status),
            "q2NZ5Uwu5kBfr+Tb42yy8XR72Uw="
        );
    }

    #[test]
    fn sids_have_the_carriers_shape() {
        let sid = new_sid("SM");
        assert_eq!(sid.len(), 34);
        assert!(sid.starts_with("SM") && sid[2..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(sid, new_sid("SM"));
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let p = params(&[("CallSid", "CA1"), ("CallStatus", "ringing")]);
        let url = "http://127.0.0.1:8080/webhooks/carrier/voice/status";
        let good = sign("token-1", url, &p);
        assert!(verify("token-1", url, &p, &good));
        assert!(!verify("token-2", url, &p, &good));
        assert!(!verify(
            "token-1",
            "http://other.host/webhooks/carrier/voice/status",
            &p,
            &good
        ));
        let tampered = params(&[("CallSid", "CA1"), ("CallStatus", "completed")]);
        assert!(!verify("token-1", url, &tampered, &good));
        assert!(!verify("token-1", url, &p, "not base64!"));
        assert!(!verify("token-1", url, &p, ""));
    }
}
