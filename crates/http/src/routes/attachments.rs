//! Photos and short videos. The type is read from the content, never from the name or the
//! declared header; content is stored by its SHA-256.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, ErrorBody};

/// Short videos may be this large; photos are held to [`MAX_PHOTO_BYTES`].
pub const MAX_BYTES: usize = 50 * 1024 * 1024;
pub const MAX_PHOTO_BYTES: usize = 10 * 1024 * 1024;

#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentView {
    pub id: String,
    pub content_type: String,
    pub size: u64,
}

/// The media type of a file from its first bytes.
pub fn sniff(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some("image/jpeg");
    }
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some("image/png");
    }
    if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    if b.len() >= 12 && &b[4..8] == b"ftyp" {
        return Some(match &b[8..12] {
            b"heic" | b"heix" | b"mif1" | b"msf1" | b"hevc" => "image/heic",
            b"qt  " => "video/quicktime",
            _ => "video/mp4",
        });
    }
    None
}

/// Upload a photo (JPEG, PNG, WebP, HEIC) or a short video (MP4, MOV) as the raw body.
#[utoipa::path(post, path = "/api/v1/attachments", tag = "attachments", security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = AttachmentView), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn upload(
    State(st): State<AppState>,
    me: AuthUser,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<(StatusCode, Json<AttachmentView>)> {
    store_upload(&st, &me.user.username, body).await
}

/// A resident's photo for a report (no login). Same checks as staff uploads.
#[utoipa::path(post, path = "/api/v1/public/attachments", tag = "public",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = AttachmentView), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn public_upload(
    State(st): State<AppState>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<(StatusCode, Json<AttachmentView>)> {
    store_upload(&st, "resident", body).await
}

pub(crate) async fn store_upload(
    st: &AppState,
    who: &str,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<(StatusCode, Json<AttachmentView>)> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::BadRequest(e.to_string())
        }
    })?;
    if bytes.is_empty() {
        return Err(ApiError::BadRequest("the body must be the file".into()));
    }
    let content_type = sniff(&bytes).ok_or_else(|| ApiError::Invalid {
        code: "unsupported_media".into(),
        message: "only JPEG, PNG, WebP, HEIC photos and MP4/MOV videos are accepted".into(),
    })?;
    if content_type.starts_with("image/") && bytes.len() > MAX_PHOTO_BYTES {
        return Err(ApiError::TooLarge);
    }
    let id = hex::encode(Sha256::digest(&bytes));
    let meta = gridloop_store::Attachment {
        id,
        content_type: content_type.to_string(),
        size: bytes.len() as u64,
        uploaded_by: who.to_string(),
        created_at: st.clock.now(),
    };
    let stored = st.store.put_attachment(meta, bytes.to_vec()).await?;
    Ok((
        StatusCode::CREATED,
        Json(AttachmentView {
            id: stored.id,
            content_type: stored.content_type,
            size: stored.size,
        }),
    ))
}

/// Download an attachment.
#[utoipa::path(get, path = "/api/v1/attachments/{id}", tag = "attachments", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, content_type = "application/octet-stream"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn download(
    State(st): State<AppState>,
    _me: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (meta, bytes) = load(&st, &id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, meta.content_type),
            (header::CACHE_CONTROL, "private, max-age=86400".into()),
        ],
        bytes,
    )
        .into_response())
}

/// A 320-pixel JPEG thumbnail of a photo (none for videos and HEIC).
#[utoipa::path(get, path = "/api/v1/attachments/{id}/thumbnail", tag = "attachments", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, content_type = "image/jpeg"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn thumbnail(
    State(st): State<AppState>,
    _me: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (_, bytes) = load(&st, &id).await?;
    let thumb = tokio::task::spawn_blocking(move || crate::media::thumbnail(&bytes))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or_else(|| ApiError::NotFound("this attachment has no thumbnail".into()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "private, max-age=86400"),
        ],
        thumb,
    )
        .into_response())
}

pub(crate) async fn load(
    st: &AppState,
    id: &str,
) -> ApiResult<(gridloop_store::Attachment, Vec<u8>)> {
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::not_found("attachment"));
    }
    st.store
        .attachment(id)
        .await?
        .ok_or_else(|| ApiError::not_found("attachment"))
}
