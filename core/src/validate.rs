//! Field-level validation errors. Every rejection names the field, so the HTTP layer can answer
//! 422 `{"field": …}` and the importer can list the reason per row.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

pub type Validated<T> = Result<T, FieldError>;

/// Trims and drops empty strings: real data uses "" and " " for "not known".
pub fn clean(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// Checks a free-text field against a length limit (in characters, not bytes: names are CJK).
pub fn max_len(field: &str, value: &Option<String>, max: usize) -> Validated<()> {
    match value {
        Some(v) if v.chars().count() > max => Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        )),
        _ => Ok(()),
    }
}
