//! Customer search, shared by the API's list filter and campaign audiences.

/// The `LIKE` pattern for a search term: lower-cased, wildcards escaped, and
/// phone-looking input reduced to its digits (`(202) 555-01` finds
/// `+1202555010x`).
pub fn search_pattern(q: &str) -> String {
    let looks_like_phone = q.chars().any(|c| c.is_ascii_digit())
        && q.chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    let term: String = if looks_like_phone {
        q.chars().filter(char::is_ascii_digit).collect()
    } else {
        q.to_lowercase()
    };
    let escaped = term
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

#[cfg(test)]
mod tests {
    use super::search_pattern;

    #[test]
    fn search_patterns_escape_wildcards_and_reduce_phone_input_to_digits() {
        assert_eq!(search_pattern("Ada"), "%ada%");
        assert_eq!(search_pattern("50%_off"), "%50\\%\\_off%");
        assert_eq!(search_pattern("(202) 555-01"), "%20255501%");
        assert_eq!(search_pattern("+1 202"), "%1202%");
    }
}
