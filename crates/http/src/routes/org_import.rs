//! Importing orgs and their boundaries from a GeoJSON FeatureCollection: `POST
//! /api/v1/orgs/import` for administrators (inside their subtree), and [`import_orgs`], which
//! `gridloop org import` shares. The rules are the domain's ([`gridloop_domain::org_import`]);
//! this file looks up what the file refers to, writes the orgs in batches (parents first) and
//! swaps in a routing index that knows the new boundaries.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gridloop_domain::org::{Level, Org};
use gridloop_domain::org_import::{self, ImportProblem};
use gridloop_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, parse_json};

/// The body limit of an import: a city's micro-grids as GeoJSON.
pub const MAX_BYTES: usize = 50 * 1024 * 1024;
/// Orgs written per store call.
pub const BATCH: usize = 2_000;
/// Up to this many codes are looked up one by one; beyond, the whole tree is read once.
const LOOKUP_ONE_BY_ONE: usize = 500;

/// What an import did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportSummary {
    /// Features in the file.
    pub features: usize,
    pub created: usize,
    /// Existing orgs renamed or given a new boundary.
    pub updated: usize,
    /// Imported orgs that carry a boundary.
    pub with_boundary: usize,
    /// Nothing was written.
    pub dry_run: bool,
    /// Boundaries in the routing index after the import (API only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routed_boundaries: Option<usize>,
}

/// Why an import wrote nothing.
#[derive(Debug)]
pub enum ImportError {
    /// The file has problems: every one of them, by feature index.
    Problems(Vec<ImportProblem>),
    Store(StoreError),
}

impl From<StoreError> for ImportError {
    fn from(e: StoreError) -> Self {
        ImportError::Store(e)
    }
}

/// Validates `doc` and, unless `dry_run`, writes it. With a `scope` (an org path) every org
/// must fall inside that subtree. Nothing is written when there is any problem. Parsing and
/// validation run off the async threads: a file can hold hundreds of thousands of features.
pub async fn import_orgs(
    store: &dyn Store,
    doc: Value,
    scope: Option<String>,
    dry_run: bool,
) -> Result<ImportSummary, ImportError> {
    let parsed = tokio::task::spawn_blocking(move || org_import::parse(&doc))
        .await
        .map_err(|e| StoreError::Backend(format!("parsing the import failed: {e}")))?;
    let features = parsed.len();
    let codes = parsed.codes_to_look_up();
    let mut existing: HashMap<String, Org> = HashMap::new();
    if codes.len() <= LOOKUP_ONE_BY_ONE {
        for code in codes {
            if let Some(o) = store.org(&code).await? {
                existing.insert(code, o);
            }
        }
    } else {
        // Every path starts with `/`: the whole tree, without boundaries.
        for o in store.orgs_in_subtree("/", false).await? {
            existing.insert(o.code.clone(), o);
        }
    }
    let plan = tokio::task::spawn_blocking(move || parsed.plan(&existing, scope.as_deref()))
        .await
        .map_err(|e| StoreError::Backend(format!("validating the import failed: {e}")))?
        .map_err(ImportError::Problems)?;
    let summary = ImportSummary {
        features,
        created: plan.created,
        updated: plan.updated,
        with_boundary: plan.with_boundary,
        dry_run,
        routed_boundaries: None,
    };
    if !dry_run {
        let mut orgs = plan.orgs.into_iter().peekable();
        while orgs.peek().is_some() {
            store.put_orgs(orgs.by_ref().take(BATCH).collect()).await?;
        }
    }
    Ok(summary)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ImportQuery {
    /// `true` to validate only: the answer says what would be written.
    pub dry_run: Option<bool>,
}

/// The 422 answer of an import: the usual error plus every problem found.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportProblemsBody {
    pub error: ImportProblemsDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportProblemsDetail {
    /// `invalid_features`.
    pub code: String,
    pub message: String,
    pub problems: Vec<ImportProblem>,
}

/// The failures of the endpoint: the usual errors, or the list of problems.
pub enum ImportRejection {
    Api(ApiError),
    Problems(Vec<ImportProblem>),
}

impl From<ApiError> for ImportRejection {
    fn from(e: ApiError) -> Self {
        ImportRejection::Api(e)
    }
}

impl IntoResponse for ImportRejection {
    fn into_response(self) -> Response {
        match self {
            ImportRejection::Api(e) => e.into_response(),
            ImportRejection::Problems(problems) => {
                let first: Vec<String> = problems.iter().take(3).map(|p| p.to_string()).collect();
                let more = problems.len().saturating_sub(first.len());
                let mut message = format!(
                    "{} problem{} in the file, nothing was imported: {}",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" },
                    first.join("; ")
                );
                if more > 0 {
                    message.push_str(&format!("; and {more} more"));
                }
                let body = ImportProblemsBody {
                    error: ImportProblemsDetail {
                        code: "invalid_features".into(),
                        message,
                        problems,
                    },
                };
                (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
            }
        }
    }
}

/// A GeoJSON FeatureCollection of orgs (documentation of the request body).
#[derive(Debug, ToSchema)]
pub struct OrgFeatureCollection {
    /// `FeatureCollection`.
    #[schema(rename = "type")]
    pub kind: String,
    /// Coordinate system of every feature: `wgs84` (default), `cgcs2000`, `gcj02`, `bd09`.
    pub crs: Option<String>,
    /// In any order: parents are written before their children.
    pub features: Vec<OrgFeature>,
}

#[derive(Debug, ToSchema)]
pub struct OrgFeature {
    /// `Feature`.
    #[schema(rename = "type")]
    pub kind: String,
    pub properties: OrgFeatureProperties,
    /// A Polygon or MultiPolygon (`[lng, lat]`), or null for an org without a boundary.
    #[schema(value_type = Option<Object>)]
    pub geometry: Option<Value>,
}

#[derive(Debug, ToSchema)]
pub struct OrgFeatureProperties {
    pub code: String,
    pub name: String,
    pub level: Level,
    /// The parent's code, in the file or already stored; absent only for the root.
    pub parent: Option<String>,
    /// This feature's coordinate system, overriding the collection's.
    pub crs: Option<String>,
}

/// Import orgs and boundaries from a GeoJSON FeatureCollection (admins; every org inside
/// the caller's subtree). All or nothing: any problem → 422 with every problem listed, by
/// feature index. Existing orgs may be renamed or re-bounded, not moved. New boundaries route
/// reports at once.
#[utoipa::path(post, path = "/api/v1/orgs/import", tag = "orgs", params(ImportQuery),
    request_body(content = OrgFeatureCollection, content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 200, body = ImportSummary), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ImportProblemsBody)))]
pub async fn import(
    State(st): State<AppState>,
    me: AuthUser,
    ApiQuery(q): ApiQuery<ImportQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ImportSummary>, ImportRejection> {
    if !me.actor.role.is_admin() {
        return Err(ApiError::Forbidden("administrators only".into()).into());
    }
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::BadRequest(format!("cannot read the request body: {e}"))
        }
    })?;
    if bytes.is_empty() {
        return Err(ApiError::BadRequest("a GeoJSON FeatureCollection is required".into()).into());
    }
    // Tens of megabytes of JSON: parse off the async threads.
    let doc: Value = tokio::task::spawn_blocking(move || parse_json(&bytes))
        .await
        .map_err(|e| ApiError::Internal(format!("parsing the import failed: {e}")))??;
    let dry_run = q.dry_run.unwrap_or(false);
    let scope = Some(me.actor.org.path.clone());
    let mut summary = match import_orgs(st.store.as_ref(), doc, scope, dry_run).await {
        Ok(s) => s,
        Err(ImportError::Problems(p)) => return Err(ImportRejection::Problems(p)),
        Err(ImportError::Store(e)) => return Err(ApiError::from(e).into()),
    };
    if !dry_run {
        let stats = st.reload_routing().await.map_err(ApiError::from)?;
        summary.routed_boundaries = Some(stats.orgs);
        tracing::info!(
            by = %me.actor.username,
            created = summary.created,
            updated = summary.updated,
            boundaries = stats.orgs,
            "orgs imported; routing index reloaded"
        );
    }
    Ok(Json(summary))
}
