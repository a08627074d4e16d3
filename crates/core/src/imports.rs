//! Bulk customer imports: reading the CSV file and validating its rows.
//!
//! The API calls [`parse`] before it answers `202` (a file that is not CSV
//! is refused there, with nothing written); the `import.process` job parses
//! the stored file again and calls [`Header::row`] on every record. Both
//! sides share this module so they agree on what a file and a row are.
//!
//! The CSV dialect is RFC 4180: comma-separated, fields optionally quoted
//! with `"` (a quote inside a quoted field is doubled), records ended by
//! `\n` or `\r\n`, quoted fields may span lines. A UTF-8 byte-order mark is
//! ignored; blank lines are skipped. The first record is the header; its
//! names are matched case-insensitively: `name`, `phone`, `email`,
//! `company`, `tags` fill the customer, any other column goes into
//! `metadata` (as a string, empty cells left out).

use std::collections::HashSet;

use crate::phone::{E164, PhoneError};

crate::text_enum! {
    /// What a row whose phone matches an existing customer of the tenant does:
    /// `skip` (the default) or `update`.
    #[derive(Default)]
    #[schema(as = ImportMode)]
    pub enum Mode {
        /// Leave the existing customer alone; the row counts as skipped.
        #[default]
        Skip = "skip",
        /// Overwrite the existing customer with the row's non-empty cells
        /// (tags replaced when given, metadata merged).
        Update = "update",
    }
}

crate::text_enum! {
    /// Where an import is: `queued → running → completed`, or `failed` when
    /// the file could not be processed (its `error` says why).
    #[schema(as = ImportStatus)]
    pub enum Status {
        /// Uploaded; waiting for a worker.
        Queued = "queued",
        /// A worker is reading the file.
        Running = "running",
        /// Every row was read (rejected rows are in its errors).
        Completed = "completed",
        /// The file could not be processed (see `error`).
        Failed = "failed",
    }
}

/// One record of the file: its fields and the line where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based line of the file where the record starts (the header is line 1
    /// in a file without leading blank lines). Errors are reported by it.
    pub line: u32,
    /// The fields in column order, unquoted (`""` read as `"`), not trimmed.
    pub fields: Vec<String>,
}

/// Why a file is not a CSV file this importer can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// The file has no record at all (empty, or only blank lines).
    #[error("the file is empty: a header row naming the columns is required")]
    Empty,
    /// A quoted field runs to the end of the file.
    #[error("the quoted field starting on line {line} is never closed (unbalanced quotes)")]
    UnclosedQuote {
        /// The line where the quoted field opens.
        line: u32,
    },
    /// A closing quote is followed by something other than a comma or a
    /// line end.
    #[error(
        "line {line}: unexpected character after a closing quote (a quote inside a quoted field must be doubled)"
    )]
    TextAfterQuote {
        /// The line of the closing quote.
        line: u32,
    },
    /// The header has no column named `phone`.
    #[error("the header has no `phone` column")]
    NoPhoneColumn,
    /// Two header columns have the same name, compared case-insensitively.
    #[error("the header names the column `{name}` twice")]
    DuplicateColumn {
        /// The repeated name, trimmed, as its second occurrence spells it.
        name: String,
    },
    /// A header name contains a control character.
    #[error("header column {column} contains a control character")]
    ControlInHeader {
        /// The column's 1-based position.
        column: usize,
    },
    /// A header name is longer than 100 characters (after trimming).
    #[error("the header has a column longer than 100 characters")]
    LongHeader,
}

/// Splits `text` into records. Fails on unbalanced quotes; blank lines are
/// skipped; at least one record (the header) is required.
pub fn parse(text: &str) -> Result<Vec<Record>, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let bytes = text.as_bytes();
    let mut reader = Reader::default();
    let mut line: u32 = 1;
    let mut i = 0;
    while i < bytes.len() {
        let token_line = line;
        match bytes[i] {
            b'"' if !reader.field_started => {
                // A quoted field: read to the closing quote ("" is a quote).
                let open_line = line;
                i += 1;
                loop {
                    let pos = text[i..]
                        .find('"')
                        .ok_or(CsvError::UnclosedQuote { line: open_line })?;
                    let chunk = &text[i..i + pos];
                    line += chunk.matches('\n').count() as u32;
                    reader.field.push_str(chunk);
                    i += pos + 1;
                    if bytes.get(i) == Some(&b'"') {
                        reader.field.push('"');
                        i += 1;
                    } else {
                        break;
                    }
                }
                match (bytes.get(i), bytes.get(i + 1)) {
                    (None | Some(b',' | b'\n'), _) | (Some(b'\r'), Some(b'\n')) => {}
                    _ => return Err(CsvError::TextAfterQuote { line }),
                }
                reader.field_started = true;
            }
            b',' => {
                reader.end_field();
                i += 1;
            }
            b'\n' => {
                reader.end_record(line);
                i += 1;
                line += 1;
            }
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                reader.end_record(line);
                i += 2;
                line += 1;
            }
            _ => {
                // The run of ordinary characters up to the next separator,
                // line end or quote, in one go (a quote inside an unquoted
                // field, or a lone CR, is taken as it is: one byte).
                let run = text[i..]
                    .find([',', '\n', '\r', '"'])
                    .unwrap_or(text.len() - i)
                    .max(1);
                reader.field.push_str(&text[i..i + run]);
                reader.field_started = true;
                i += run;
            }
        }
        if !reader.record_started && (reader.field_started || !reader.fields.is_empty()) {
            reader.record_started = true;
            reader.record_line = token_line;
        }
    }
    reader.end_record(line);
    if reader.records.is_empty() {
        return Err(CsvError::Empty);
    }
    Ok(reader.records)
}

#[derive(Default)]
struct Reader {
    records: Vec<Record>,
    fields: Vec<String>,
    field: String,
    /// The current field has a character or was quoted.
    field_started: bool,
    /// The current record has a field or a separator (else the line is blank).
    record_started: bool,
    record_line: u32,
}

impl Reader {
    fn end_field(&mut self) {
        self.fields.push(std::mem::take(&mut self.field));
        self.field_started = false;
    }

    fn end_record(&mut self, line: u32) {
        if self.record_started || self.field_started {
            self.fields.push(std::mem::take(&mut self.field));
            let line = if self.record_line == 0 {
                line
            } else {
                self.record_line
            };
            self.records.push(Record {
                line,
                fields: std::mem::take(&mut self.fields),
            });
        }
        self.field.clear();
        self.fields.clear();
        self.field_started = false;
        self.record_started = false;
        self.record_line = 0;
    }
}

/// Where each known column sits in the header.
#[derive(Debug, Clone)]
pub struct Header {
    columns: usize,
    name: Option<usize>,
    phone: usize,
    email: Option<usize>,
    company: Option<usize>,
    tags: Option<usize>,
    /// Every other named column, to metadata under its header text.
    metadata: Vec<(usize, String)>,
}

/// A valid row, ready to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The customer's name; the phone number when the row has none.
    pub name: String,
    /// E.164.
    pub phone: String,
    /// The email address, lowercased; `None` when the cell is empty.
    pub email: Option<String>,
    /// The company; `None` when the cell is empty.
    pub company: Option<String>,
    /// The `tags` cell split on `;`, `,` or `|`: trimmed, lowercased, each
    /// once, in order of first appearance.
    pub tags: Vec<String>,
    /// The other columns' non-empty cells, trimmed, as strings under their
    /// header names.
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// Why a row was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The column at fault (`phone`, `email`, a metadata column), or `row`
    /// when the record as a whole is wrong.
    pub field: String,
    /// What is wrong, in words (`email is not a valid address`).
    pub reason: String,
}

impl RowError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Most tags one customer carries (as `POST /v1/customers`).
pub const MAX_TAGS: usize = 20;
/// Largest metadata object, serialised (as `POST /v1/customers`).
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

impl Header {
    /// Reads the header record. Names are trimmed and matched
    /// case-insensitively; columns with an empty name are ignored.
    pub fn new(record: &Record) -> Result<Header, CsvError> {
        let mut header = Header {
            columns: record.fields.len(),
            name: None,
            phone: usize::MAX,
            email: None,
            company: None,
            tags: None,
            metadata: Vec::new(),
        };
        let mut seen = HashSet::new();
        for (i, raw) in record.fields.iter().enumerate() {
            if raw.chars().any(char::is_control) {
                return Err(CsvError::ControlInHeader { column: i + 1 });
            }
            let name = raw.trim();
            if name.is_empty() {
                continue;
            }
            if name.chars().count() > 100 {
                return Err(CsvError::LongHeader);
            }
            if !seen.insert(name.to_lowercase()) {
                return Err(CsvError::DuplicateColumn {
                    name: name.to_string(),
                });
            }
            match name.to_lowercase().as_str() {
                "name" => header.name = Some(i),
                "phone" => header.phone = i,
                "email" => header.email = Some(i),
                "company" => header.company = Some(i),
                "tags" => header.tags = Some(i),
                _ => header.metadata.push((i, name.to_string())),
            }
        }
        if header.phone == usize::MAX {
            return Err(CsvError::NoPhoneColumn);
        }
        Ok(header)
    }

    /// Validates one data record with the rules of `POST /v1/customers`
    /// (phone required here: it is what rows are matched on). An empty
    /// name falls back to the phone number, since lead lists often have none.
    pub fn row(&self, record: &Record, region: &str) -> Result<Row, RowError> {
        let fields = &record.fields;
        if fields.len() != self.columns {
            return Err(RowError::new(
                "row",
                format!(
                    "has {} fields, the header has {}",
                    fields.len(),
                    self.columns
                ),
            ));
        }
        let cell = |i: Option<usize>| i.map(|i| fields[i].trim()).filter(|v| !v.is_empty());
        for (field, i) in [
            ("name", self.name),
            ("phone", Some(self.phone)),
            ("email", self.email),
            ("company", self.company),
            ("tags", self.tags),
        ] {
            if cell(i).is_some_and(|v| v.chars().any(char::is_control)) {
                return Err(RowError::new(field, "contains a control character"));
            }
        }
        let phone = match cell(Some(self.phone)) {
            None => return Err(RowError::new("phone", "phone is required")),
            Some(raw) => E164::parse(raw, region).map_err(|e| {
                RowError::new(
                    "phone",
                    match e {
                        PhoneError::Unparseable => "not a phone number",
                        PhoneError::Invalid => "not a valid phone number for its country",
                    },
                )
            })?,
        };
        let name = match cell(self.name) {
            None => phone.to_string(),
            Some(name) if name.chars().count() > 200 => {
                return Err(RowError::new("name", "name must be at most 200 characters"));
            }
            Some(name) => name.to_string(),
        };
        let email = match cell(self.email) {
            None => None,
            Some(email) if crate::email::is_valid(email) => Some(email.to_lowercase()),
            Some(_) => return Err(RowError::new("email", "email is not a valid address")),
        };
        let company = match cell(self.company) {
            Some(c) if c.chars().count() > 200 => {
                return Err(RowError::new(
                    "company",
                    "company must be at most 200 characters",
                ));
            }
            other => other.map(str::to_string),
        };
        let mut tags: Vec<String> = Vec::new();
        if let Some(raw) = cell(self.tags) {
            for tag in raw.split([';', ',', '|']) {
                let tag = tag.trim().to_lowercase();
                if tag.is_empty() {
                    continue;
                }
                if tag.chars().count() > 50 {
                    return Err(RowError::new("tags", "each tag must be 1 to 50 characters"));
                }
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
            if tags.len() > MAX_TAGS {
                return Err(RowError::new("tags", format!("at most {MAX_TAGS} tags")));
            }
        }
        let mut metadata = serde_json::Map::new();
        let mut size = 2;
        for (i, key) in &self.metadata {
            let value = fields[*i].trim();
            if value.is_empty() {
                continue;
            }
            // Line breaks and tabs are text; other control characters
            // (NUL above all, which PostgreSQL cannot store) are refused.
            if value
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
            {
                return Err(RowError::new(key.clone(), "contains a control character"));
            }
            size += key.len() + value.len() + 6;
            metadata.insert(key.clone(), serde_json::Value::String(value.to_string()));
        }
        if size > MAX_METADATA_BYTES {
            return Err(RowError::new(
                "metadata",
                "the extra columns add up to more than 16 KiB",
            ));
        }
        Ok(Row {
            name,
            phone: phone.into(),
            email,
            company,
            tags,
            metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<Vec<String>> {
        parse(text).unwrap().into_iter().map(|r| r.fields).collect()
    }

    #[test]
    fn quoted_fields_hold_commas_quotes_and_line_breaks() {
        let text =
            "name,phone\r\n\"Lovelace, Ada\",\"+1 202 555 0123\"\n\"Say \"\"hi\"\"\n2nd line\",x\n";
        assert_eq!(
            fields(text),
            vec![
                vec!["name", "phone"],
                vec!["Lovelace, Ada", "+1 202 555 0123"],
                vec!["Say \"hi\"\n2nd line", "x"],
            ]
        );
    }

    #[test]
    fn records_know_their_line_and_blank_lines_are_skipped() {
        let records = parse("\u{feff}name,phone\n\n\"a\nb\",1\nc,2").unwrap();
        let lines: Vec<u32> = records.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![1, 3, 5]);
        assert_eq!(records[0].fields, vec!["name", "phone"]);
    }

    #[test]
    fn empty_fields_and_empty_quoted_fields_are_kept() {
        assert_eq!(
            fields("a,b,c\n,\"\",\n\"\",x,\"\""),
            vec![vec!["a", "b", "c"], vec!["", "", ""], vec!["", "x", ""]]
        );
        assert_eq!(fields("a,b\n1,"), vec![vec!["a", "b"], vec!["1", ""]]);
    }

    #[test]
    fn unbalanced_quotes_and_stray_text_are_malformed() {
        assert_eq!(
            parse("name,phone\n\"Ada,+12025550123\nBob,1\n"),
            Err(CsvError::UnclosedQuote { line: 2 })
        );
        assert_eq!(
            parse("name,phone\n\"Ada\"x,1\n"),
            Err(CsvError::TextAfterQuote { line: 2 })
        );
        assert_eq!(parse(""), Err(CsvError::Empty));
        assert_eq!(parse("\n\n"), Err(CsvError::Empty));
    }

    #[test]
    fn a_header_needs_a_phone_column_and_distinct_names() {
        let header = |t: &str| Header::new(&parse(t).unwrap()[0]);
        assert_eq!(header("name,email").unwrap_err(), CsvError::NoPhoneColumn);
        assert!(matches!(
            header("phone,Phone").unwrap_err(),
            CsvError::DuplicateColumn { .. }
        ));
        assert!(header(" Phone ,NAME,,Plan").is_ok());
    }

    #[test]
    fn rows_are_validated_and_extra_columns_become_metadata() {
        let records =
            parse("Name,Phone,Email,tags,Plan,Region\nAda,(202) 555-0123,ADA@EXAMPLE.COM,VIP; vip;churn,gold,\n")
                .unwrap();
        let header = Header::new(&records[0]).unwrap();
        let row = header.row(&records[1], "US").unwrap();
        assert_eq!(row.phone, "+12025550123");
        assert_eq!(row.email.as_deref(), Some("ada@example.com"));
        assert_eq!(row.tags, vec!["vip", "churn"]);
        assert_eq!(
            serde_json::Value::Object(row.metadata),
            serde_json::json!({"Plan": "gold"})
        );
    }

    #[test]
    fn bad_rows_name_the_field_at_fault() {
        let records = parse(
            "name,phone,email\nA,nope,\nB,+12025550123,bad\n,+12025550124,\nD,+1202555\u{0}0125,\nE,1\n",
        )
        .unwrap();
        let header = Header::new(&records[0]).unwrap();
        let field = |i: usize| header.row(&records[i], "US").map_err(|e| e.field);
        assert_eq!(field(1), Err("phone".into()));
        assert_eq!(field(2), Err("email".into()));
        assert_eq!(field(3).unwrap().name, "+12025550124");
        assert_eq!(field(4), Err("phone".into()));
        assert_eq!(field(5), Err("row".into()));
    }
}
