//! Validation errors: every failing field of an input, collected at once.
//!
//! A parser of a single value fails with a [`FieldError`] (one sentence). Parsers of whole
//! inputs ([`crate::NewSipTrunk::parse`], [`crate::SipTrunkPatch::parse`]) run every field
//! parser and gather the failures into [`ValidationErrors`], an ordered map of
//! field -> sentences that the API renders as the contract's 422 body unchanged.

use std::fmt;

/// Why one value was refused: a sentence meant for the API client.
///
/// The sentence never contains the refused value itself, so a secret typed into the wrong
/// field cannot leak through an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError(String);

impl FieldError {
    /// A failure described by `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// The sentence.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FieldError {}

/// Every failing field of an input, in the order the fields were checked, each with its
/// sentences in the order they were found.
///
/// ```
/// use domain::ValidationErrors;
///
/// let mut errors = ValidationErrors::new();
/// errors.add("sip_address", "SIP server address is required.");
/// errors.add("nickname", "The nickname may not be greater than 50 characters.");
/// assert_eq!(errors.fields().map(|(field, _)| field).collect::<Vec<_>>(), ["sip_address", "nickname"]);
/// assert_eq!(errors.messages("sip_address"), ["SIP server address is required."]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors {
    fields: Vec<(String, Vec<String>)>,
}

impl ValidationErrors {
    /// No failures yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A map holding one failure.
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    /// Records `message` against `field`, after any sentences the field already has.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let field = field.into();
        let message = message.into();
        match self.fields.iter_mut().find(|(name, _)| *name == field) {
            Some((_, messages)) => {
                if !messages.contains(&message) {
                    messages.push(message);
                }
            }
            None => self.fields.push((field, vec![message])),
        }
    }

    /// Keeps the value of `result`, or records its error against `field` and gives `None`.
    pub fn check<T>(&mut self, field: &str, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.add(field, error.0);
                None
            }
        }
    }

    /// Adds every failure of `other`, keeping this map's order first.
    pub fn merge(&mut self, other: ValidationErrors) {
        for (field, messages) in other.fields {
            for message in messages {
                self.add(field.clone(), message);
            }
        }
    }

    /// True when nothing failed.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// True when `field` has at least one failure.
    pub fn contains(&self, field: &str) -> bool {
        self.fields.iter().any(|(name, _)| name == field)
    }

    /// The sentences recorded against `field` (empty when it passed).
    pub fn messages(&self, field: &str) -> &[String] {
        self.fields
            .iter()
            .find(|(name, _)| name == field)
            .map_or(&[], |(_, messages)| messages.as_slice())
    }

    /// Every failing field with its sentences, in the order recorded.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.fields
            .iter()
            .map(|(field, messages)| (field.as_str(), messages.as_slice()))
    }

    /// `Ok(value)` when nothing failed, otherwise these errors.
    pub fn into_result<T>(self, value: impl FnOnce() -> T) -> Result<T, ValidationErrors> {
        if self.is_empty() {
            Ok(value())
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid input:")?;
        for (field, messages) in &self.fields {
            write!(f, " {field}: {}", messages.join(" "))?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_the_order_they_were_first_reported_in() {
        let mut errors = ValidationErrors::new();
        errors.add("b", "one");
        errors.add("a", "two");
        errors.add("b", "three");
        let fields: Vec<_> = errors.fields().collect();
        assert_eq!(
            fields[0],
            ("b", &["one".to_string(), "three".to_string()][..])
        );
        assert_eq!(fields[1], ("a", &["two".to_string()][..]));
    }

    #[test]
    fn the_same_sentence_is_not_reported_twice_for_one_field() {
        let mut errors = ValidationErrors::new();
        errors.add("a", "same");
        errors.add("a", "same");
        assert_eq!(errors.messages("a").len(), 1);
    }

    #[test]
    fn check_records_the_failure_and_gives_none() {
        let mut errors = ValidationErrors::new();
        let value: Option<u8> = errors.check("x", Err(FieldError::new("bad")));
        assert_eq!(value, None);
        assert_eq!(errors.messages("x"), ["bad"]);
        assert_eq!(errors.check("y", Ok(3)), Some(3));
        assert!(!errors.contains("y"));
    }
}
