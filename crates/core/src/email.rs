//! Email addresses as customers hold them: the one check that both
//! `POST /v1/customers` and bulk imports apply.

/// Whether `email` (already trimmed) is an address we store: at most 320
/// bytes, no whitespace, a non-empty local part and a dotted domain.
pub fn is_valid(email: &str) -> bool {
    email.len() <= 320
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_need_a_local_part_and_a_dotted_domain() {
        assert!(is_valid("ada@example.com"));
        assert!(!is_valid("@example.com"));
        assert!(!is_valid("ada@example"));
        assert!(!is_valid("ada@.example.com"));
        assert!(!is_valid("ada@example.com."));
        assert!(!is_valid("ada lovelace@example.com"));
        assert!(!is_valid(&format!("{}@example.com", "a".repeat(320))));
    }
}
