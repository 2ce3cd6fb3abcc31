//! The ways in besides the generic report: night visits (夜访日记), quick reports from a
//! phone with "fixed on the spot" (当场整改), tower-group relays (塔群求助), hotline intake
//! (热线受理) and likely duplicates. Each ends in an ordinary case through the same path.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use gridloop_domain::case::{Case, Channel, Ctx, Location, NewCase, Relay, Reporter, Status};
use gridloop_domain::duplicates::{self, Candidate};
use gridloop_domain::geo::Crs;
use gridloop_domain::org::OrgRef;
use gridloop_domain::role::Role;
use gridloop_store::{BBox, CaseFilter, HotlineCall, NightVisit, Visibility};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::cases::{
    can_see, check_attachments, load_visible, org_in_reach, parse_id, store_new_case,
};
use crate::views::CaseView;

fn require_role(me: &AuthUser, allowed: &[Role], what: &str) -> ApiResult<()> {
    if allowed.contains(&me.actor.role) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "a {} may not {what}",
            me.actor.role.as_str()
        )))
    }
}

/// The area of a report: the org given (in the caller's reach), else where the location
/// falls, else the caller's own org.
async fn area_of(
    st: &AppState,
    me: &AuthUser,
    org: Option<&str>,
    location: Option<Location>,
) -> ApiResult<OrgRef> {
    if let Some(code) = org {
        return Ok(org_in_reach(st, &me.actor, code).await?.as_ref());
    }
    if let Some(l) = location {
        l.validate()?;
        if let Some(o) = st.routing().locate(l) {
            return Ok(o.clone());
        }
    }
    Ok(me.actor.org.clone())
}

fn to_wgs84(location: Option<Location>, crs: Option<Crs>) -> Option<Location> {
    location.map(|l| crs.unwrap_or_default().to_wgs84(l))
}

// --- night visits ------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
pub struct Concern {
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub category: Option<String>,
    pub location: Option<Location>,
    pub crs: Option<Crs>,
    #[serde(default)]
    pub reporter: Reporter,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NightVisitRequest {
    /// The community or grid visited; default the caller's org.
    pub org: Option<String>,
    /// 夜访组
    pub group_name: String,
    pub leader: String,
    pub visited_at: DateTime<Utc>,
    pub place: String,
    #[serde(default)]
    pub households: u32,
    #[serde(default)]
    pub people_met: u32,
    #[serde(default)]
    pub notes: String,
    /// Each concern raised becomes a case (channel `night_visit`).
    #[serde(default)]
    pub concerns: Vec<Concern>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConcernOutcome {
    pub case_id: i64,
    pub number: String,
    pub title: String,
    pub status: Status,
    pub result: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NightVisitView {
    pub id: i64,
    pub org: String,
    pub group_name: String,
    pub leader: String,
    pub visited_at: DateTime<Utc>,
    pub place: String,
    pub households: u32,
    pub people_met: u32,
    pub notes: String,
    pub created_by: String,
    /// How each concern raised on the visit stands now.
    pub concerns: Vec<ConcernOutcome>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NightVisitList {
    pub items: Vec<NightVisitView>,
}

async fn visit_view(st: &AppState, v: NightVisit) -> ApiResult<NightVisitView> {
    let page = st
        .store
        .list_cases(CaseFilter {
            visit_id: Some(v.id),
            limit: 200,
            ..CaseFilter::default()
        })
        .await?;
    Ok(NightVisitView {
        concerns: page
            .items
            .into_iter()
            .rev()
            .map(|c| ConcernOutcome {
                case_id: c.id,
                number: c.number,
                title: c.title,
                status: c.status,
                result: c.result,
            })
            .collect(),
        id: v.id,
        org: v.org,
        group_name: v.group_name,
        leader: v.leader,
        visited_at: v.visited_at,
        place: v.place,
        households: v.households,
        people_met: v.people_met,
        notes: v.notes,
        created_by: v.created_by,
    })
}

/// Record a night visit; each concern raised becomes a case linked to it.
#[utoipa::path(post, path = "/api/v1/night-visits", tag = "channels", request_body = NightVisitRequest,
    security(("bearer" = [])),
    responses((status = 201, body = NightVisitView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn create_night_visit(
    State(st): State<AppState>,
    me: AuthUser,
    ApiJson(req): ApiJson<NightVisitRequest>,
) -> ApiResult<(StatusCode, Json<NightVisitView>)> {
    require_role(
        &me,
        &[Role::Admin, Role::Leader, Role::Dispatcher, Role::Handler],
        "record night visits",
    )?;
    for (field, v, max) in [
        ("group_name", &req.group_name, 100),
        ("leader", &req.leader, 50),
        ("place", &req.place, 200),
    ] {
        if v.trim().is_empty() || v.chars().count() > max {
            return Err(ApiError::invalid(field, format!("1–{max} characters")));
        }
    }
    if req.notes.chars().count() > 5000 {
        return Err(ApiError::invalid("notes", "at most 5000 characters"));
    }
    if req.concerns.len() > 50 {
        return Err(ApiError::invalid("concerns", "at most 50 per visit"));
    }
    let org = match &req.org {
        Some(code) => org_in_reach(&st, &me.actor, code).await?.as_ref(),
        None => me.actor.org.clone(),
    };
    let visit = st
        .store
        .create_night_visit(NightVisit {
            id: 0,
            org: org.code.clone(),
            org_path: org.path.clone(),
            group_name: req.group_name.trim().to_string(),
            leader: req.leader.trim().to_string(),
            visited_at: gridloop_domain::to_millis(req.visited_at),
            place: req.place.trim().to_string(),
            households: req.households,
            people_met: req.people_met,
            notes: req.notes,
            created_by: me.actor.username.clone(),
            created_at: st.clock.now(),
        })
        .await?;
    let routing = st.routing();
    for c in req.concerns {
        let location = to_wgs84(c.location, c.crs);
        let area = match location.and_then(|l| routing.locate(l)) {
            Some(o) if org.covers(&o.path) => o.clone(),
            _ => org.clone(),
        };
        let input = NewCase {
            channel: Some(Channel::NightVisit),
            title: c.title,
            description: c.description,
            category: c.category,
            location,
            reporter: c.reporter,
            crs: c.crs,
            visit_id: Some(visit.id),
            address: Some(visit.place.clone()),
            ..NewCase::default()
        };
        store_new_case(&st, input, &me.actor(), &area, None).await?;
    }
    Ok((StatusCode::CREATED, Json(visit_view(&st, visit).await?)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct VisitQuery {
    /// Page: visits older than this id.
    pub before: Option<i64>,
    /// 1–100, default 20.
    pub limit: Option<u32>,
}

/// The night-visit diary of the caller's subtree, newest first, with how each concern ended.
#[utoipa::path(get, path = "/api/v1/night-visits", tag = "channels", params(VisitQuery), security(("bearer" = [])),
    responses((status = 200, body = NightVisitList), (status = 401, body = ErrorBody)))]
pub async fn list_night_visits(
    State(st): State<AppState>,
    me: AuthUser,
    ApiQuery(q): ApiQuery<VisitQuery>,
) -> ApiResult<Json<NightVisitList>> {
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be 1–100".into()));
    }
    let visits = st
        .store
        .night_visits(&me.actor.org.path, q.before, limit)
        .await?;
    let mut items = Vec::with_capacity(visits.len());
    for v in visits {
        items.push(visit_view(&st, v).await?);
    }
    Ok(Json(NightVisitList { items }))
}

/// One night visit.
#[utoipa::path(get, path = "/api/v1/night-visits/{id}", tag = "channels", params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = NightVisitView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_night_visit(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<NightVisitView>> {
    let id = id
        .parse::<i64>()
        .map_err(|_| ApiError::not_found("night visit"))?;
    match st.store.night_visit(id).await? {
        Some(v) if me.actor.covers(&v.org_path) => Ok(Json(visit_view(&st, v).await?)),
        _ => Err(ApiError::not_found("night visit")),
    }
}

// --- quick reports -------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
pub struct QuickReportRequest {
    /// `grid_patrol`, `door_visit`, `volunteer` or `inspection`.
    pub channel: Channel,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub category: Option<String>,
    pub location: Option<Location>,
    pub crs: Option<Crs>,
    pub org: Option<String>,
    /// Photos (ids from `POST /api/v1/attachments`).
    #[serde(default)]
    pub photos: Vec<String>,
    #[serde(default)]
    pub reporter: Reporter,
    /// 当场整改: fixed where found; closes the case at once. Needs `result` and an "after" photo.
    #[serde(default)]
    pub fixed_on_the_spot: bool,
    pub result: Option<String>,
    #[serde(default)]
    pub result_photos: Vec<String>,
}

/// A report from the field (patrol, door visit, volunteer, inspection), optionally fixed on the spot.
#[utoipa::path(post, path = "/api/v1/quick-reports", tag = "channels", request_body = QuickReportRequest,
    security(("bearer" = [])),
    responses((status = 201, body = CaseView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn quick_report(
    State(st): State<AppState>,
    me: AuthUser,
    ApiJson(req): ApiJson<QuickReportRequest>,
) -> ApiResult<(StatusCode, Json<CaseView>)> {
    require_role(
        &me,
        &[
            Role::Admin,
            Role::Dispatcher,
            Role::Handler,
            Role::Inspector,
            Role::Volunteer,
        ],
        "report from the field",
    )?;
    if !matches!(
        req.channel,
        Channel::GridPatrol | Channel::DoorVisit | Channel::Volunteer | Channel::Inspection
    ) {
        return Err(ApiError::invalid(
            "channel",
            "a quick report comes from grid_patrol, door_visit, volunteer or inspection",
        ));
    }
    let result = match (req.fixed_on_the_spot, req.result.as_deref().map(str::trim)) {
        (true, Some(r)) if !r.is_empty() => {
            if req.result_photos.is_empty() {
                return Err(ApiError::invalid(
                    "result_photos",
                    "a fix on the spot needs a photo of the result",
                ));
            }
            Some(r.to_string())
        }
        (true, _) => return Err(ApiError::invalid("result", "say what was done on the spot")),
        (false, _) => None,
    };
    check_attachments(&st, &req.photos).await?;
    check_attachments(&st, &req.result_photos).await?;
    let location = to_wgs84(req.location, req.crs);
    let area = area_of(&st, &me, req.org.as_deref(), location).await?;
    let input = NewCase {
        channel: Some(req.channel),
        title: req.title,
        description: req.description,
        category: req.category,
        location,
        crs: req.crs,
        reporter: req.reporter,
        attachments: req.photos,
        ..NewCase::default()
    };
    let actor = me.actor();
    let case = store_new_case(&st, input, &actor, &area, None).await?;
    let case = match result {
        None => case,
        Some(result) => {
            let cal = st.calendar();
            let policy = st.policy.clone();
            let now = st.clock.now();
            let photos = req.result_photos;
            st.store
                .update_case(
                    case.id,
                    Some(case.version),
                    Box::new(move |c| {
                        let ctx = Ctx {
                            now,
                            calendar: &cal,
                            policy: &policy,
                        };
                        gridloop_domain::case::close_on_the_spot(c, &result, &photos, &actor, &ctx)
                    }),
                )
                .await?
        }
    };
    Ok((StatusCode::CREATED, Json(CaseView::new(case, None))))
}

// --- tower-group relays -----------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
pub struct RelayRequest {
    /// The tower group (塔群) the message came from.
    pub tower_group: String,
    pub resident_name: Option<String>,
    pub resident_phone: Option<String>,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub category: Option<String>,
    pub location: Option<Location>,
    pub crs: Option<Crs>,
}

/// A commander relays a resident's request from a tower group. The commander follows the
/// case (it is theirs to see) and passes the answer back to the resident.
#[utoipa::path(post, path = "/api/v1/tower-relays", tag = "channels", request_body = RelayRequest,
    security(("bearer" = [])),
    responses((status = 201, body = CaseView), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn tower_relay(
    State(st): State<AppState>,
    me: AuthUser,
    ApiJson(req): ApiJson<RelayRequest>,
) -> ApiResult<(StatusCode, Json<CaseView>)> {
    let groups = st.store.tower_groups(&me.actor.org.path).await?;
    let group = groups
        .into_iter()
        .find(|g| g.code == req.tower_group)
        .ok_or_else(|| {
            ApiError::invalid(
                "tower_group",
                format!("unknown tower group {}", req.tower_group),
            )
        })?;
    let location = to_wgs84(req.location, req.crs);
    let routing = st.routing();
    let area = match location.and_then(|l| routing.locate(l)) {
        Some(o) => o.clone(),
        None => OrgRef::new(&group.org, &group.org_path),
    };
    let input = NewCase {
        channel: Some(Channel::TowerGroup),
        title: req.title,
        description: req.description,
        category: req.category,
        location,
        crs: req.crs,
        reporter: Reporter {
            name: req.resident_name.clone(),
            phone: req.resident_phone,
        },
        relay: Some(Relay {
            tower_group: group.code.clone(),
            commander: me.actor.username.clone(),
            resident_name: req.resident_name,
        }),
        ..NewCase::default()
    };
    let case = store_new_case(&st, input, &me.actor(), &area, None).await?;
    Ok((StatusCode::CREATED, Json(CaseView::new(case, None))))
}

// --- hotline intake ------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct CallView {
    pub id: i64,
    pub operator: String,
    pub at: DateTime<Utc>,
    pub summary: String,
    pub case_id: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallerHistory {
    /// Masked.
    pub phone: String,
    pub cases: Vec<CaseView>,
    pub calls: Vec<CallView>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CallRequest {
    pub phone: String,
    pub summary: String,
    /// An existing case the call is about (a follow-up), or none.
    pub case_id: Option<i64>,
}

fn require_hotline(me: &AuthUser) -> ApiResult<()> {
    require_role(me, &[Role::Admin, Role::Dispatcher], "take hotline calls")
}

/// A caller's earlier cases and calls, for the operator answering (热线受理). Viewing is
/// logged as a call lookup only through the call record the operator then saves.
#[utoipa::path(get, path = "/api/v1/hotline/callers/{phone}", tag = "channels", params(("phone" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = CallerHistory), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn caller_history(
    State(st): State<AppState>,
    me: AuthUser,
    Path(phone): Path<String>,
) -> ApiResult<Json<CallerHistory>> {
    require_hotline(&me)?;
    let phone = gridloop_domain::case::normalize_phone(&phone)?;
    let page = st
        .store
        .list_cases(CaseFilter {
            visible_to: Some(Visibility {
                path: me.actor.org.path.clone(),
                username: me.actor.username.clone(),
            }),
            reporter_phone: Some(phone.clone()),
            limit: 50,
            ..CaseFilter::default()
        })
        .await?;
    let calls = st.store.calls_from(&phone, 50).await?;
    Ok(Json(CallerHistory {
        phone: gridloop_domain::privacy::mask_phone(&phone),
        cases: page
            .items
            .into_iter()
            .map(|c| CaseView::new(c, None))
            .collect(),
        calls: calls
            .into_iter()
            .filter(|c| me.actor.covers(&c.org_path))
            .map(|c| CallView {
                id: c.id,
                operator: c.operator,
                at: c.at,
                summary: c.summary,
                case_id: c.case_id,
            })
            .collect(),
    }))
}

/// Record a hotline call (and the case it is about, if any).
#[utoipa::path(post, path = "/api/v1/hotline/calls", tag = "channels", request_body = CallRequest,
    security(("bearer" = [])),
    responses((status = 201, body = CallView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn record_call(
    State(st): State<AppState>,
    me: AuthUser,
    ApiJson(req): ApiJson<CallRequest>,
) -> ApiResult<(StatusCode, Json<CallView>)> {
    require_hotline(&me)?;
    let phone = gridloop_domain::case::normalize_phone(&req.phone)?;
    if req.summary.trim().is_empty() || req.summary.chars().count() > 2000 {
        return Err(ApiError::invalid("summary", "1–2000 characters"));
    }
    if let Some(id) = req.case_id {
        load_visible(&st, &me, id)
            .await
            .map_err(|_| ApiError::invalid("case_id", "unknown case"))?;
    }
    let call = st
        .store
        .record_call(HotlineCall {
            id: 0,
            phone,
            operator: me.actor.username.clone(),
            org_path: me.actor.org.path.clone(),
            at: st.clock.now(),
            summary: req.summary,
            case_id: req.case_id,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CallView {
            id: call.id,
            operator: call.operator,
            at: call.at,
            summary: call.summary,
            case_id: call.case_id,
        }),
    ))
}

// --- duplicates ----------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct DuplicateView {
    pub case_id: i64,
    pub number: String,
    pub title: String,
    pub status: Status,
    pub distance_m: f64,
    pub similarity: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DuplicateList {
    pub items: Vec<DuplicateView>,
}

/// Open cases of the last days nearby that say much the same: likely duplicates to `merge`.
pub(crate) async fn likely_duplicates(
    st: &AppState,
    me: &AuthUser,
    case: &Case,
) -> ApiResult<Vec<(Candidate, Case)>> {
    let Some(at) = case.location else {
        return Ok(vec![]);
    };
    let now = st.clock.now();
    let page = st
        .store
        .list_cases(CaseFilter {
            visible_to: Some(Visibility {
                path: me.actor.org.path.clone(),
                username: me.actor.username.clone(),
            }),
            statuses: vec![
                Status::Reported,
                Status::Accepted,
                Status::Dispatched,
                Status::InProgress,
                Status::Replied,
            ],
            created_from: Some(now - Duration::days(duplicates::WINDOW_DAYS)),
            within: Some(BBox::around(at.lat, at.lng, duplicates::RADIUS_M)),
            limit: 200,
            ..CaseFilter::default()
        })
        .await?;
    let others: Vec<Case> = page
        .items
        .into_iter()
        .filter(|c| c.id != case.id && can_see(&me.actor, c))
        .collect();
    let ranked = duplicates::rank(&format!("{} {}", case.title, case.description), at, &others);
    Ok(ranked
        .into_iter()
        .filter_map(|cand| {
            others
                .iter()
                .find(|c| c.id == cand.case_id)
                .cloned()
                .map(|c| (cand, c))
        })
        .collect())
}

/// Likely duplicates of a case: open, within 50 m, reported in the last 7 days, similar words.
#[utoipa::path(get, path = "/api/v1/cases/{id}/duplicates", tag = "cases", params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = DuplicateList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn duplicates_of(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<DuplicateList>> {
    let case = load_visible(&st, &me, parse_id(&id)?).await?;
    let items = likely_duplicates(&st, &me, &case)
        .await?
        .into_iter()
        .map(|(cand, c)| DuplicateView {
            case_id: c.id,
            number: c.number,
            title: c.title,
            status: c.status,
            distance_m: cand.distance_m,
            similarity: cand.similarity,
        })
        .collect();
    Ok(Json(DuplicateList { items }))
}
