//! The one check every piece of client text passes at the edge, before any
//! handler sees it: JSON bodies (every string and every object key, however
//! deeply nested), query strings, path parameters and carrier forms.
//!
//! PostgreSQL `text` and `jsonb` cannot hold NUL (a 500 if it got that far),
//! and control characters have no business in a name, an email or a key.
//! Free text — SMS and note bodies, template bodies, metadata values — may
//! hold line breaks and tabs; nothing else may hold any control character.

use std::fmt::Write as _;

use crate::error::ApiError;

/// Where a string may contain line breaks and tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// Names, emails, phone numbers, ids, keys, query values: no control
    /// characters at all.
    Line,
    /// Message, note and template bodies, metadata values: `\n`, `\r` and
    /// `\t` allowed, every other control character refused.
    Free,
}

/// JSON fields (by their own name) that hold free text.
const FREE_TEXT_FIELDS: &[&str] = &["body", "text", "description"];

/// The object whose values (not keys) are free text wherever they nest.
const FREE_TEXT_OBJECTS: &[&str] = &["metadata"];

/// Whether `kind` of text may hold `c`.
pub fn allows(kind: TextKind, c: char) -> bool {
    !c.is_control() || (kind == TextKind::Free && matches!(c, '\n' | '\r' | '\t'))
}

/// The first character of `value` that `kind` refuses, if any.
pub fn refused_char(value: &str, kind: TextKind) -> Option<char> {
    value.chars().find(|&c| !allows(kind, c))
}

fn describe(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

/// The 400 (`code`) for a request parameter — `what` names it — holding the
/// control character `c`.
pub fn refused_parameter(code: &'static str, what: &str, c: char) -> ApiError {
    ApiError::bad_request(
        code,
        format!("{what} contains the control character {}", describe(c)),
    )
}

/// The 422 for `field` holding `c`.
pub fn refusal(field: &str, c: char, kind: TextKind) -> ApiError {
    let allowed = match kind {
        TextKind::Line => "no control characters",
        TextKind::Free => "no control characters other than line breaks and tabs",
    };
    ApiError::validation(
        field.to_string(),
        format!(
            "{field} contains the control character {}; it may hold {allowed}",
            describe(c)
        ),
    )
}

/// Checks one value; `Err` names `field`.
pub fn check(field: &str, value: &str, kind: TextKind) -> Result<(), ApiError> {
    match refused_char(value, kind) {
        Some(c) => Err(refusal(field, c, kind)),
        None => Ok(()),
    }
}

/// The longest `name` a customer, template or campaign may have.
pub const MAX_NAME_CHARS: usize = 200;

/// A resource's `name` (customer, template, campaign), trimmed: 1 to
/// [`MAX_NAME_CHARS`] characters.
pub fn validate_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::validation(
            "name",
            format!("name must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(name.to_string())
}

/// Checks every string and key of a JSON document, naming the first
/// offender by its path (`metadata.notes`, `tags[2]`).
pub fn check_json(value: &serde_json::Value) -> Result<(), ApiError> {
    walk(value, &mut String::new(), TextKind::Line, None)
}

fn walk(
    value: &serde_json::Value,
    path: &mut String,
    inherited: TextKind,
    own_name: Option<&str>,
) -> Result<(), ApiError> {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            let kind = if own_name.is_some_and(|name| FREE_TEXT_FIELDS.contains(&name)) {
                TextKind::Free
            } else {
                inherited
            };
            check(field_name(path), s, kind)
        }
        Value::Array(items) => {
            let len = path.len();
            for (i, item) in items.iter().enumerate() {
                let _ = write!(path, "[{i}]");
                walk(item, path, inherited, own_name)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Object(map) => {
            let len = path.len();
            for (key, item) in map {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                if let Some(c) = refused_char(key, TextKind::Line) {
                    // The key itself is at fault: name its parent, not the garbled key.
                    path.truncate(len);
                    let parent = if path.is_empty() {
                        "body"
                    } else {
                        path.as_str()
                    };
                    return Err(ApiError::validation(
                        parent.to_string(),
                        format!(
                            "a key in {parent} contains the control character {}; keys may hold no control characters",
                            describe(c)
                        ),
                    ));
                }
                let kind = if len == 0 && FREE_TEXT_OBJECTS.contains(&key.as_str()) {
                    // The object's keys stay single-line (checked above);
                    // its values are free text.
                    TextKind::Free
                } else {
                    inherited
                };
                walk(item, path, kind, Some(key))?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

fn field_name(path: &str) -> &str {
    if path.is_empty() { "body" } else { path }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(value: serde_json::Value) -> Option<String> {
        check_json(&value)
            .err()
            .map(|e| e.field().unwrap_or("-").to_string())
    }

    /// Asserts the field each document's check names (`None`: accepted).
    fn assert_fields(cases: &[(serde_json::Value, Option<&str>)]) {
        for (document, field) in cases {
            assert_eq!(field_of(document.clone()).as_deref(), *field, "{document}");
        }
    }

    #[test]
    fn nul_is_refused_everywhere_and_named() {
        assert_fields(&[
            (json!({"name": "a\u{0}b"}), Some("name")),
            (json!({"body": "a\u{0}b"}), Some("body")),
            (
                json!({"metadata": {"k": {"deep": ["x", "\u{0}"]}}}),
                Some("metadata.k.deep[1]"),
            ),
            (json!({"metadata": {"a\u{0}": 1}}), Some("metadata")),
            (json!({"tags": ["ok", "b\u{7}"]}), Some("tags[1]")),
        ]);
    }

    #[test]
    fn line_breaks_only_in_free_text() {
        assert_fields(&[
            (json!({"body": "line\r\nnext\ttab"}), None),
            (json!({"metadata": {"note": "a\nb"}}), None),
            (json!({"name": "a\nb"}), Some("name")),
            (json!({"email": "a@b.c\t"}), Some("email")),
            (json!({"metadata": {"a\nb": "x"}}), Some("metadata")),
            // C1 controls and DEL are control characters too.
            (json!({"body": "a\u{85}"}), Some("body")),
            (json!({"body": "a\u{7f}"}), Some("body")),
            // Ordinary non-ASCII text passes.
            (json!({"name": "Zoë Ångström 山田"}), None),
        ]);
    }
}
