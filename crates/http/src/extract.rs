//! Extractors that turn every malformed request into the contract's JSON errors.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body. Malformed JSON → 400; well-formed but wrong shape → 422; over the body
/// limit → 413. The content type is not insisted on: hand-written clients often omit it.
pub struct ApiJson<T>(pub T);

/// The raw bytes as well, for idempotency fingerprints.
pub struct ApiJsonBytes<T>(pub T, pub Bytes);

fn body_error(e: axum::extract::rejection::BytesRejection) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge
    } else {
        ApiError::BadRequest(format!("cannot read the request body: {e}"))
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => v,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            return Err(match inner.classify() {
                serde_json::error::Category::Data => ApiError::Invalid {
                    code: "invalid_input".into(),
                    message: if path == "." {
                        inner.to_string()
                    } else {
                        format!("{path}: {inner}")
                    },
                },
                _ => ApiError::BadRequest(format!("malformed JSON: {inner}")),
            });
        }
    };
    de.end()
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    Ok(value)
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        if bytes.is_empty() {
            return Err(ApiError::BadRequest("a JSON body is required".into()));
        }
        Ok(ApiJson(parse_json(&bytes)?))
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJsonBytes<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        if bytes.is_empty() {
            return Err(ApiError::BadRequest("a JSON body is required".into()));
        }
        Ok(ApiJsonBytes(parse_json(&bytes)?, bytes))
    }
}

/// Query parameters. Unparseable → 400. Empty values count as absent (Open311 habit).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> =
            url_pairs(query).filter(|(_, v)| !v.is_empty()).collect();
        let encoded = serde_urlencoded::to_string(&pairs)
            .map_err(|e| ApiError::BadRequest(format!("bad query string: {e}")))?;
        serde_urlencoded::from_str(&encoded)
            .map(ApiQuery)
            .map_err(|e| ApiError::BadRequest(format!("bad query string: {e}")))
    }
}

fn url_pairs(q: &str) -> impl Iterator<Item = (String, String)> + '_ {
    serde_urlencoded::from_str::<Vec<(String, String)>>(q)
        .unwrap_or_default()
        .into_iter()
}
