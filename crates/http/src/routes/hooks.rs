//! Camera alert platforms (智慧天眼预警) push alerts here. Each request is signed: an
//! HMAC-SHA256 over the raw body, keyed with the platform's API key. A flood is absorbed:
//! the platform's alert id makes retries idempotent, and repeats of the same camera and
//! alert type within a window join one open case instead of opening new ones.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use gridloop_domain::DomainError;
use gridloop_domain::case::{Channel, Ctx, Location, NewCase, Status};
use gridloop_domain::geo::Crs;
use gridloop_domain::role::Actor;
use gridloop_store::{CaseFilter, IdempotencyKey, StoreError};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::token_hash;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::parse_json;
use crate::routes::attachments::sniff;

/// Snapshots come inline; allow a few megabytes of base64.
pub const MAX_BYTES: usize = 8 * 1024 * 1024;
/// Alert ids remembered per case for replay detection of joined alerts.
const REMEMBERED_ALERTS: usize = 500;

#[derive(Debug, Deserialize, ToSchema)]
pub struct CameraAlert {
    /// The platform's id of this alert: a retry with the same id is a replay.
    pub alert_id: String,
    pub camera_id: String,
    /// e.g. `burning` (焚烧), `dumping`, `street_vending`, `crowd`.
    pub alert_type: String,
    pub occurred_at: Option<DateTime<Utc>>,
    pub location: Location,
    pub crs: Option<Crs>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    /// Base64 JPEG/PNG snapshot.
    pub snapshot: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertAccepted {
    pub case_id: i64,
    pub number: String,
    /// True when the alert joined an open case of the same camera and type.
    pub joined: bool,
    /// True when this alert id was seen before (nothing changed).
    pub replayed: bool,
}

/// Serializes alerts of one camera and type, so that a burst cannot open two cases.
#[derive(Default)]
pub struct SourceLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl SourceLocks {
    fn get(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, l| Arc::strong_count(l) > 1);
        }
        map.entry(key.to_string()).or_default().clone()
    }
}

fn unauthorized(m: &str) -> ApiError {
    ApiError::Unauthorized(m.to_string())
}

/// Receive a camera alert (signed).
#[utoipa::path(post, path = "/api/v1/hooks/camera", tag = "channels", request_body = CameraAlert,
    params(
        ("X-Api-Key" = String, Header, description = "the platform's API key"),
        ("X-Signature" = String, Header, description = "`sha256=` + hex HMAC-SHA256 of the raw body, keyed with the API key")
    ),
    responses((status = 201, body = AlertAccepted), (status = 200, body = AlertAccepted, description = "joined or replayed"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn camera(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<(StatusCode, Json<AlertAccepted>)> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::BadRequest(e.to_string())
        }
    })?;
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("X-Api-Key is required"))?;
    let client = st
        .store
        .api_key_by_hash(&token_hash(key))
        .await?
        .ok_or_else(|| unauthorized("unknown API key"))?;
    let sig = headers
        .get("x-signature")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().trim_start_matches("sha256="))
        .and_then(|s| hex::decode(s).ok())
        .ok_or_else(|| {
            unauthorized("X-Signature: sha256=<hex HMAC-SHA256 of the body> is required")
        })?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    mac.update(&body);
    mac.verify_slice(&sig)
        .map_err(|_| unauthorized("the signature does not match the body"))?;

    let alert: CameraAlert = parse_json(&body)?;
    for (field, v) in [
        ("alert_id", &alert.alert_id),
        ("camera_id", &alert.camera_id),
        ("alert_type", &alert.alert_type),
    ] {
        if v.trim().is_empty() || v.len() > 100 {
            return Err(ApiError::invalid(field, "1–100 characters"));
        }
    }
    let location = alert.crs.unwrap_or_default().to_wgs84(alert.location);
    location.validate()?;
    let source_key = format!("camera:{}:{}", alert.camera_id, alert.alert_type);
    let actor = Actor::ApiClient(client.name.clone());

    let lock = st.camera_locks.get(&source_key);
    let _guard = lock.lock().await;
    let now = st.clock.now();

    // 1. An open case of this camera and type from the last minutes takes the alert.
    let window = Duration::minutes(i64::from(st.policy.camera_join_minutes));
    let open = st
        .store
        .list_cases(CaseFilter {
            source_key: Some(source_key.clone()),
            created_from: Some(now - window),
            statuses: vec![
                Status::Reported,
                Status::Accepted,
                Status::Dispatched,
                Status::InProgress,
                Status::Replied,
            ],
            limit: 1,
            ..CaseFilter::default()
        })
        .await?;
    if let Some(case) = open.items.into_iter().next() {
        let cal = st.calendar();
        let policy = st.policy.clone();
        let alert_id = alert.alert_id.clone();
        let details = json!({"alert_id": alert.alert_id, "occurred_at": alert.occurred_at, "camera_id": alert.camera_id});
        let r = st
            .store
            .update_case(
                case.id,
                None,
                Box::new(move |c| {
                    let seen = c
                        .attributes
                        .as_ref()
                        .and_then(|a| a.get("alert_ids"))
                        .and_then(|v| v.as_array())
                        .is_some_and(|ids| {
                            ids.iter().any(|x| x.as_str() == Some(alert_id.as_str()))
                        });
                    if seen {
                        return Err(DomainError::InvalidState("replay".into()));
                    }
                    let ctx = Ctx {
                        now,
                        calendar: &cal,
                        policy: &policy,
                    };
                    let mut d = gridloop_domain::case::record_repeat(c, details, &actor, &ctx)?;
                    remember_alert(&mut d.case.attributes, &alert_id);
                    Ok(d)
                }),
            )
            .await;
        return match r {
            Ok(c) => Ok((
                StatusCode::OK,
                Json(AlertAccepted {
                    case_id: c.id,
                    number: c.number,
                    joined: true,
                    replayed: false,
                }),
            )),
            Err(StoreError::Domain(DomainError::InvalidState(m))) if m == "replay" => Ok((
                StatusCode::OK,
                Json(AlertAccepted {
                    case_id: case.id,
                    number: case.number,
                    joined: true,
                    replayed: true,
                }),
            )),
            Err(e) => Err(e.into()),
        };
    }

    // 2. Otherwise a new case, idempotent by the platform's alert id.
    let mut attachments = vec![];
    if let Some(b64) = &alert.snapshot {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| ApiError::invalid("snapshot", "not base64"))?;
        let content_type = sniff(&bytes)
            .ok_or_else(|| ApiError::invalid("snapshot", "not a JPEG, PNG or WebP image"))?;
        let meta = gridloop_store::Attachment {
            id: hex::encode(Sha256::digest(&bytes)),
            content_type: content_type.into(),
            size: bytes.len() as u64,
            uploaded_by: actor.name(),
            created_at: now,
        };
        attachments.push(st.store.put_attachment(meta, bytes).await?.id);
    }
    let area = st
        .routing()
        .locate(location)
        .cloned()
        .unwrap_or_else(|| st.intake_org.clone());
    let mut attributes = Some(json!({
        "camera_id": alert.camera_id, "alert_type": alert.alert_type, "occurred_at": alert.occurred_at,
    }));
    remember_alert(&mut attributes, &alert.alert_id);
    let input = NewCase {
        channel: Some(Channel::CameraAlert),
        title: alert
            .title
            .clone()
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| format!("智慧天眼预警:{}", alert.alert_type)),
        description: alert.description.clone().unwrap_or_default(),
        category: alert.category.clone(),
        location: Some(location),
        crs: alert.crs,
        attachments,
        source_key: Some(source_key),
        attributes,
        ..NewCase::default()
    };
    let idem = IdempotencyKey {
        scope: format!("camera:{}", client.name),
        key: alert.alert_id.clone(),
        fingerprint: hex::encode(Sha256::digest(&body)),
    };
    let created =
        crate::routes::cases::store_new_case_outcome(&st, input, &actor, &area, Some(idem)).await?;
    let status = if created.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(AlertAccepted {
            case_id: created.case.id,
            number: created.case.number,
            joined: false,
            replayed: created.replayed,
        }),
    ))
}

fn remember_alert(attributes: &mut Option<serde_json::Value>, alert_id: &str) {
    let a = attributes.get_or_insert_with(|| json!({}));
    if !a.is_object() {
        *a = json!({});
    }
    let ids = a
        .as_object_mut()
        .map(|o| o.entry("alert_ids").or_insert_with(|| json!([])));
    if let Some(serde_json::Value::Array(ids)) = ids {
        ids.push(json!(alert_id));
        if ids.len() > REMEMBERED_ALERTS {
            ids.remove(0);
        }
    }
}
