//! SMS templates: `{{placeholder}}` substitution.
//!
//! Values come from the recipient customer (`name`, `first_name`,
//! `last_name`, `email`, `phone`, `company`) and from explicit variables,
//! which win. A placeholder with no value is an error naming every missing
//! one: a message is never sent with a hole in it.

use std::collections::{BTreeMap, BTreeSet};

/// Variables available to a template.
pub type Variables = BTreeMap<String, String>;

/// Why a template cannot be read or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// Placeholders without a value: every one of them, by name.
    #[error("missing values for {}", .0.iter().cloned().collect::<Vec<_>>().join(", "))]
    Missing(BTreeSet<String>),
    /// A `{{` never closed by `}}`, at this byte offset.
    #[error("unterminated placeholder at byte {0}")]
    Unterminated(usize),
    /// A placeholder whose name is empty, longer than 64 characters or not
    /// made of ASCII letters, digits and `_`; its `{{` is at this byte offset.
    #[error("empty or invalid placeholder name at byte {0}")]
    BadName(usize),
}

/// The placeholder names a template uses.
pub fn placeholders(template: &str) -> Result<BTreeSet<String>, TemplateError> {
    let mut names = BTreeSet::new();
    walk(template, |piece| {
        if let Piece::Placeholder(name) = piece {
            names.insert(name.to_string());
        }
    })?;
    Ok(names)
}

/// Fills every placeholder from `vars`.
pub fn render(template: &str, vars: &Variables) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut missing = BTreeSet::new();
    walk(template, |piece| match piece {
        Piece::Text(text) => out.push_str(text),
        Piece::Placeholder(name) => match vars.get(name) {
            Some(value) => out.push_str(value),
            None => {
                missing.insert(name.to_string());
            }
        },
    })?;
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(TemplateError::Missing(missing))
    }
}

/// The variables a customer record provides.
pub fn customer_variables(
    name: &str,
    email: Option<&str>,
    phone: Option<&str>,
    company: Option<&str>,
) -> Variables {
    let mut vars = Variables::new();
    let name = name.trim();
    let (first, last) = name.split_once(' ').unwrap_or((name, ""));
    vars.insert("name".into(), name.to_string());
    vars.insert("first_name".into(), first.to_string());
    if !last.trim().is_empty() {
        vars.insert("last_name".into(), last.trim().to_string());
    }
    for (key, value) in [("email", email), ("phone", phone), ("company", company)] {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            vars.insert(key.into(), v.to_string());
        }
    }
    vars
}

enum Piece<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

fn walk<'a>(template: &'a str, mut emit: impl FnMut(Piece<'a>)) -> Result<(), TemplateError> {
    let mut rest = template;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        emit(Piece::Text(&rest[..start]));
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or(TemplateError::Unterminated(offset + start))?;
        let name = after[..end].trim();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(TemplateError::BadName(offset + start));
        }
        emit(Piece::Placeholder(name));
        let consumed = start + 2 + end + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    emit(Piece::Text(rest));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Variables {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn placeholders_are_filled_with_or_without_spaces() {
        let out = render(
            "Hi {{first_name}}, see you {{ date }}!",
            &vars(&[("first_name", "Ada"), ("date", "Monday")]),
        );
        assert_eq!(out.unwrap(), "Hi Ada, see you Monday!");
        assert_eq!(
            render("no placeholders", &Variables::new()).unwrap(),
            "no placeholders"
        );
    }

    #[test]
    fn every_missing_variable_is_named() {
        let err = render("{{a}} {{b}} {{c}} {{a}}", &vars(&[("b", "x")])).unwrap_err();
        assert_eq!(
            err,
            TemplateError::Missing(["a".to_string(), "c".to_string()].into())
        );
        assert_eq!(err.to_string(), "missing values for a, c");
    }

    #[test]
    fn malformed_templates_are_rejected() {
        assert!(matches!(
            placeholders("Hi {{name"),
            Err(TemplateError::Unterminated(3))
        ));
        assert!(matches!(
            placeholders("Hi {{}}"),
            Err(TemplateError::BadName(3))
        ));
        assert!(matches!(
            placeholders("Hi {{na me}}"),
            Err(TemplateError::BadName(3))
        ));
        assert_eq!(placeholders("{{a}}{{b}}{{a}}").unwrap().len(), 2);
    }

    #[test]
    fn customers_provide_their_fields() {
        let v = customer_variables(
            "Ada King Lovelace",
            Some("ada@x.example"),
            None,
            Some("Engines"),
        );
        assert_eq!(v["first_name"], "Ada");
        assert_eq!(v["last_name"], "King Lovelace");
        assert_eq!(v["company"], "Engines");
        assert!(!v.contains_key("phone"));
        assert!(!customer_variables("Plato", None, None, None).contains_key("last_name"));
    }
}
