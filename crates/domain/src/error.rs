use thiserror::Error;

/// Why the domain refused a command. The HTTP layer maps each kind to one status code.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DomainError {
    /// The caller's role may not do this at all (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// The case's state does not allow this action now (HTTP 409).
    #[error("{0}")]
    InvalidState(String),
    /// Well-formed but invalid input (HTTP 422). `field` names the offending field.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

impl DomainError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        DomainError::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }
}
