//! The residents' endpoints: no login. A resident proves a case is theirs with the last four
//! digits of the phone number they reported with; wrong guesses are throttled.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use gridloop_domain::case::{Case, Channel, Ctx, Location, NewCase, Rating, Reporter};
use gridloop_domain::privacy::last4;
use gridloop_domain::role::Actor;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiJsonBytes, ApiQuery};
use crate::routes::cases::{check_attachments, idempotency, store_new_case};
use crate::views::{OriginalCase, PublicCaseView};

#[derive(Debug, Deserialize, ToSchema)]
pub struct PublicReportRequest {
    /// Optional: the first words of the description when absent.
    pub title: Option<String>,
    pub description: String,
    pub category: Option<String>,
    /// E.g. from the phone's location (WGS-84 unless `crs` says otherwise).
    pub location: Option<Location>,
    /// `wgs84` (default), `cgcs2000`, `gcj02` or `bd09`.
    pub crs: Option<gridloop_domain::geo::Crs>,
    pub address: Option<String>,
    /// `phone` is required: its last four digits let the resident track the case.
    pub reporter: Reporter,
    #[serde(default)]
    pub attachments: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PublicReportCreated {
    pub number: String,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct TrackQuery {
    pub phone_last4: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct FeedbackRequest {
    pub phone_last4: String,
    pub rating: Rating,
    pub comment: Option<String>,
}

/// A resident's report. Returns the case number to track it with.
#[utoipa::path(post, path = "/api/v1/public/reports", tag = "public", request_body = PublicReportRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe create")),
    responses((status = 201, body = PublicReportCreated), (status = 400, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_report(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiJsonBytes(req, body): ApiJsonBytes<PublicReportRequest>,
) -> ApiResult<(StatusCode, Json<PublicReportCreated>)> {
    if req
        .reporter
        .phone
        .as_deref()
        .is_none_or(|p| p.trim().is_empty())
    {
        return Err(ApiError::invalid(
            "reporter.phone",
            "is required to track the case",
        ));
    }
    let location = req
        .location
        .map(|l| req.crs.unwrap_or_default().to_wgs84(l));
    let area = match location {
        Some(loc) => {
            loc.validate()?;
            st.routing()
                .locate(loc)
                .cloned()
                .unwrap_or_else(|| st.intake_org.clone())
        }
        None => st.intake_org.clone(),
    };
    check_attachments(&st, &req.attachments).await?;
    let title = match req.title.as_deref().map(str::trim) {
        Some(t) if !t.is_empty() => t.to_string(),
        _ => req.description.trim().chars().take(30).collect(),
    };
    let idem = idempotency(&headers, "public", &body)?;
    let input = NewCase {
        channel: Some(Channel::ResidentWeb),
        title,
        description: req.description,
        category: req.category,
        location,
        address: req.address,
        reporter: req.reporter,
        attachments: req.attachments,
        crs: req.crs,
        ..NewCase::default()
    };
    let case = store_new_case(&st, input, &Actor::Resident, &area, idem).await?;
    Ok((
        StatusCode::CREATED,
        Json(PublicReportCreated {
            number: case.number,
        }),
    ))
}

/// Finds a case by number for the resident who reported it; anything else reads as 404.
async fn owned_case(st: &AppState, number: &str, phone_last4: Option<&str>) -> ApiResult<Case> {
    let digits = phone_last4
        .map(str::trim)
        .filter(|d| d.len() == 4 && d.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            ApiError::BadRequest("phone_last4 must be the last 4 digits of your phone".into())
        })?;
    let key = format!("track:{number}");
    let now = st.clock.now();
    st.login_limiter.check(&key, now)?;
    let case = st.store.case_by_number(number).await?;
    match case {
        Some(c) if c.reporter.phone.as_deref().map(last4).as_deref() == Some(digits) => Ok(c),
        _ => {
            st.login_limiter.failed(&key, now);
            Err(ApiError::not_found("case"))
        }
    }
}

/// Track a case with its number and the last 4 digits of the reporter's phone.
#[utoipa::path(get, path = "/api/v1/public/reports/{number}", tag = "public",
    params(("number" = String, Path), TrackQuery),
    responses((status = 200, body = PublicCaseView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn track(
    State(st): State<AppState>,
    Path(number): Path<String>,
    ApiQuery(q): ApiQuery<TrackQuery>,
) -> ApiResult<Json<PublicCaseView>> {
    let case = owned_case(&st, &number, q.phone_last4.as_deref()).await?;
    let events = st.store.events(case.id).await?;
    let mut view = PublicCaseView::new(&case, &events);
    if let Some(original) = case.merged_into {
        view.original = st
            .store
            .case(original)
            .await?
            .as_ref()
            .map(OriginalCase::from);
    }
    Ok(Json(view))
}

/// Rate the answer (回访). `unsatisfied` on a closed case reopens it as policy says.
#[utoipa::path(post, path = "/api/v1/public/reports/{number}/feedback", tag = "public",
    params(("number" = String, Path)), request_body = FeedbackRequest,
    responses((status = 200, body = PublicCaseView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn feedback(
    State(st): State<AppState>,
    Path(number): Path<String>,
    ApiJson(req): ApiJson<FeedbackRequest>,
) -> ApiResult<Json<PublicCaseView>> {
    let case = owned_case(&st, &number, Some(&req.phone_last4)).await?;
    let cal = st.calendar();
    let policy = st.policy.clone();
    let now = st.clock.now();
    let updated = st
        .store
        .update_case(
            case.id,
            None,
            Box::new(move |c| {
                let ctx = Ctx {
                    now,
                    calendar: &cal,
                    policy: &policy,
                };
                gridloop_domain::case::feedback(
                    c,
                    req.rating,
                    req.comment.as_deref(),
                    &Actor::Resident,
                    &ctx,
                )
            }),
        )
        .await?;
    let events = st.store.events(updated.id).await?;
    Ok(Json(PublicCaseView::new(&updated, &events)))
}

/// A photo of the resident's own case, with its EXIF (location, device) removed.
#[utoipa::path(get, path = "/api/v1/public/reports/{number}/photos/{id}", tag = "public",
    params(("number" = String, Path), ("id" = String, Path), TrackQuery),
    responses((status = 200, content_type = "image/jpeg"), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn photo(
    State(st): State<AppState>,
    Path((number, id)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<TrackQuery>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let case = owned_case(&st, &number, q.phone_last4.as_deref()).await?;
    if !case.attachments.contains(&id) && !case.result_attachments.contains(&id) {
        return Err(ApiError::not_found("photo"));
    }
    let (meta, bytes) = crate::routes::attachments::load(&st, &id).await?;
    let clean = tokio::task::spawn_blocking(move || crate::media::strip_metadata(&bytes))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, meta.content_type),
            (
                axum::http::header::CACHE_CONTROL,
                "private, max-age=3600".to_string(),
            ),
        ],
        clean,
    )
        .into_response())
}
