//! The one place where errors become HTTP statuses (CONTRACT.md "Errors").

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gridloop_domain::DomainError;
use gridloop_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// `{"error": {"code": "snake_case_code", "message": "human text"}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    /// Absent, or outside the caller's jurisdiction: the message never says which.
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the request body is too large")]
    TooLarge,
    #[error("{message}")]
    Invalid { code: String, message: String },
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            code: "invalid_input".into(),
            message: format!("{field}: {}", message.into()),
        }
    }

    fn parts(&self) -> (StatusCode, String) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "malformed_request".into()),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized".into()),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden".into()),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found".into()),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict".into()),
            ApiError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into()),
            ApiError::Invalid { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code.clone()),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited".into()),
            ApiError::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into())
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error".into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "internal error; see the server log".to_string()
            }
            other => other.to_string(),
        };
        (
            status,
            Json(ErrorBody {
                error: ErrorDetail { code, message },
            }),
        )
            .into_response()
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Forbidden(m) => ApiError::Forbidden(m),
            DomainError::InvalidState(m) => ApiError::Conflict(m),
            DomainError::Invalid { field, message } => ApiError::invalid(&field, message),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found("resource"),
            e @ StoreError::VersionConflict { .. } => ApiError::Conflict(e.to_string()),
            StoreError::Domain(d) => d.into(),
            StoreError::Duplicate(m) => ApiError::Conflict(m),
            e @ StoreError::IdempotencyMismatch => ApiError::Invalid {
                code: "idempotency_key_reused".into(),
                message: e.to_string(),
            },
            StoreError::Backend(m) => ApiError::Internal(m),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
