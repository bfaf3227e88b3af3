//! One error type for the whole product, classified by kind, carrying a stable machine code.
//! The HTTP layer maps the kind to a status; the code and message reach the caller unchanged.

use std::borrow::Cow;

/// What sort of failure this is; decides the HTTP status and whether a caller may retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is malformed or breaks a rule (400).
    Invalid,
    /// The request was understood but cannot be carried out in the current state (422).
    Unprocessable,
    /// No credentials, or credentials that do not match (401).
    Unauthorized,
    /// Valid credentials without the right (403).
    Forbidden,
    /// The named object does not exist (404).
    NotFound,
    /// The object already exists or changed underneath (409).
    Conflict,
    /// The body is larger than allowed (413).
    TooLarge,
    /// A dependency (the database, a platform) is briefly unavailable; retry later (503).
    Unavailable,
    /// A defect or an unexpected failure (500).
    Internal,
}

/// The product's error: a kind, a stable snake_case code and a human message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub code: Cow<'static, str>,
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self { kind, code: code.into(), message: message.into() }
    }

    pub fn invalid(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, code, message)
    }

    pub fn unprocessable(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unprocessable, code, message)
    }

    /// `what` is a domain noun (`contact`, `channel`…); the code becomes `contact_not_found`.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(ErrorKind::NotFound, format!("{what}_not_found"), format!("no {what} with id `{id}`"))
    }

    pub fn conflict(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, code, message)
    }

    pub fn unavailable(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, code, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, "internal", message)
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}
