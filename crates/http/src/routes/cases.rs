use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use gridloop_domain::case::{
    Action, Case, Channel, Ctx, Location, MergeTarget, NewCase, Reporter, Resolved, Status,
    authorize, decide, new_case,
};
use gridloop_domain::geo::Crs;
use gridloop_domain::org::OrgRef;
use gridloop_domain::role::{Actor, UserActor};
use gridloop_store::{CaseFilter, CaseSort, CreateCase, IdempotencyKey, Visibility};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiJsonBytes, ApiQuery};
use crate::views::CaseView;

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateCaseRequest {
    pub channel: Channel,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub category: Option<String>,
    /// With no `org`, the case is routed to the grid containing this point.
    pub location: Option<Location>,
    /// The coordinate system of `location`: `wgs84` (default, phone GPS), `cgcs2000`,
    /// `gcj02` (高德/腾讯) or `bd09` (百度). Stored converted to WGS-84.
    pub crs: Option<Crs>,
    pub address: Option<String>,
    /// The org code where the problem is (属地).
    pub org: Option<String>,
    #[serde(default)]
    pub reporter: Reporter,
    /// Ids from `POST /api/v1/attachments`.
    #[serde(default)]
    pub attachments: Vec<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Comma-separated statuses.
    pub status: Option<String>,
    /// Responsible org (its subtree).
    pub org: Option<String>,
    /// Area org, 属地 (its subtree).
    pub area: Option<String>,
    pub overdue: Option<bool>,
    pub channel: Option<Channel>,
    pub category: Option<String>,
    /// Text in the number, title or description.
    pub q: Option<String>,
    /// `newest` (default), `deadline` or `updated`.
    #[param(value_type = Option<String>)]
    pub sort: Option<CaseSort>,
    /// 1–200, default 50.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CaseList {
    pub items: Vec<CaseView>,
    /// Present when there may be more: pass it as `cursor` for the next page. A search by a
    /// single character reads a bounded number of cases per page, so its pages may be short
    /// (even empty) and still carry a cursor.
    pub next_cursor: Option<String>,
}

/// `{"action": "...", "expected_version": N, ...fields of the action}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ActionRequest {
    /// The version the caller last saw; a stale one → 409.
    pub expected_version: Option<i64>,
    #[serde(flatten)]
    pub action: Action,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Revealed {
    pub name: Option<String>,
    pub phone: Option<String>,
}

pub(crate) fn parse_id(id: &str) -> ApiResult<i64> {
    id.parse::<i64>().map_err(|_| ApiError::not_found("case"))
}

/// Whether a user may see a case: it is (or its area is) in their subtree, or they reported
/// it. Everything else is 404.
pub(crate) fn can_see(u: &UserActor, c: &Case) -> bool {
    u.covers(&c.org_path) || u.covers(&c.area_path) || c.created_by.as_deref() == Some(&u.username)
}

pub(crate) async fn load_visible(st: &AppState, me: &AuthUser, id: i64) -> ApiResult<Case> {
    match st.store.case(id).await? {
        Some(c) if can_see(&me.actor, &c) => Ok(c),
        _ => Err(ApiError::not_found("case")),
    }
}

/// An org code from a request body that the caller may use: absent and outside the
/// caller's jurisdiction read the same.
pub(crate) async fn org_in_reach(
    st: &AppState,
    me: &UserActor,
    code: &str,
) -> ApiResult<gridloop_domain::org::Org> {
    match st.store.org(code).await? {
        Some(o) if me.covers(&o.path) => Ok(o),
        _ => Err(ApiError::invalid("org", format!("unknown org {code}"))),
    }
}

pub(crate) async fn check_attachments(st: &AppState, ids: &[String]) -> ApiResult<()> {
    for id in ids {
        if st.store.attachment(id).await?.is_none() {
            return Err(ApiError::invalid(
                "attachments",
                format!("unknown attachment {id}"),
            ));
        }
    }
    Ok(())
}

pub(crate) fn idempotency(
    headers: &HeaderMap,
    scope: &str,
    body: &[u8],
) -> ApiResult<Option<IdempotencyKey>> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200)
        .ok_or_else(|| {
            ApiError::BadRequest("Idempotency-Key must be 1–200 visible characters".into())
        })?;
    Ok(Some(IdempotencyKey {
        scope: scope.to_string(),
        key: key.to_string(),
        fingerprint: hex::encode(Sha256::digest(body)),
    }))
}

/// Creates a case from a decided report and answers 201 (also for an idempotent replay).
pub(crate) async fn store_new_case(
    st: &AppState,
    input: NewCase,
    actor: &Actor,
    area: &OrgRef,
    idem: Option<IdempotencyKey>,
) -> ApiResult<Case> {
    Ok(store_new_case_outcome(st, input, actor, area, idem)
        .await?
        .case)
}

/// As [`store_new_case`], telling whether it was an idempotent replay.
pub(crate) async fn store_new_case_outcome(
    st: &AppState,
    input: NewCase,
    actor: &Actor,
    area: &OrgRef,
    idem: Option<IdempotencyKey>,
) -> ApiResult<gridloop_store::Created> {
    let cal = st.calendar();
    let ctx = Ctx {
        now: st.clock.now(),
        calendar: &cal,
        policy: &st.policy,
    };
    let decision = new_case(input, actor, area, &ctx)?;
    let number_day = cal.local_date(decision.case.created_at);
    Ok(st
        .store
        .create_case(CreateCase {
            decision,
            number_day,
            idempotency: idem,
        })
        .await?)
}

/// Report a case (staff channels: hotline, patrol, visits…).
#[utoipa::path(post, path = "/api/v1/cases", tag = "cases", request_body = CreateCaseRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe create")),
    security(("bearer" = [])),
    responses((status = 201, body = CaseView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_case(
    State(st): State<AppState>,
    me: AuthUser,
    headers: HeaderMap,
    ApiJsonBytes(req, body): ApiJsonBytes<CreateCaseRequest>,
) -> ApiResult<(StatusCode, Json<CaseView>)> {
    let location = req
        .location
        .map(|l| req.crs.unwrap_or_default().to_wgs84(l));
    let area = match (&req.org, location) {
        (Some(code), _) => org_in_reach(&st, &me.actor, code).await?.as_ref(),
        (None, Some(loc)) => {
            loc.validate()?;
            st.routing()
                .locate(loc)
                .cloned()
                .unwrap_or_else(|| me.actor.org.clone())
        }
        (None, None) => me.actor.org.clone(),
    };
    check_attachments(&st, &req.attachments).await?;
    let idem = idempotency(&headers, &me.user.username, &body)?;
    let input = NewCase {
        channel: Some(req.channel),
        title: req.title,
        description: req.description,
        category: req.category,
        location,
        address: req.address,
        reporter: req.reporter,
        attachments: req.attachments,
        crs: req.crs,
        ..NewCase::default()
    };
    let case = store_new_case(&st, input, &me.actor(), &area, idem).await?;
    Ok((StatusCode::CREATED, Json(CaseView::new(case, None))))
}

/// The cases the caller may see, newest first unless `sort` says otherwise.
#[utoipa::path(get, path = "/api/v1/cases", tag = "cases", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = CaseList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_cases(
    State(st): State<AppState>,
    me: AuthUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<CaseList>> {
    let statuses = match &q.status {
        None => vec![],
        Some(s) => s
            .split(',')
            .map(|x| {
                Status::parse(x.trim())
                    .ok_or_else(|| ApiError::BadRequest(format!("unknown status {x}")))
            })
            .collect::<ApiResult<Vec<_>>>()?,
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be 1–200".into()));
    }
    let subtree = |code: Option<String>| {
        let st = st.clone();
        let actor = me.actor.clone();
        async move {
            match code {
                None => Ok(None),
                Some(c) => match st.store.org(&c).await? {
                    Some(o) if actor.covers(&o.path) => Ok(Some(o.path)),
                    _ => Err(ApiError::not_found("org")),
                },
            }
        }
    };
    let filter = CaseFilter {
        visible_to: Some(Visibility {
            path: me.actor.org.path.clone(),
            username: me.actor.username.clone(),
        }),
        statuses,
        org_path: subtree(q.org).await?,
        area_path: subtree(q.area).await?,
        overdue: q.overdue,
        channel: q.channel,
        category: q.category,
        q: q.q.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
        reporter_phone: None,
        sort: q.sort.unwrap_or_default(),
        limit,
        cursor: q.cursor,
        ..CaseFilter::default()
    };
    let page = st.store.list_cases(filter).await.map_err(|e| match e {
        gridloop_store::StoreError::Domain(d) => ApiError::BadRequest(d.to_string()),
        other => other.into(),
    })?;
    Ok(Json(CaseList {
        items: page
            .items
            .into_iter()
            .map(|c| CaseView::new(c, None))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One case with its full timeline, oldest event first.
#[utoipa::path(get, path = "/api/v1/cases/{id}", tag = "cases", params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = CaseView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_case(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<CaseView>> {
    let case = load_visible(&st, &me, parse_id(&id)?).await?;
    let events = st.store.events(case.id).await?;
    Ok(Json(CaseView::new(case, Some(events))))
}

/// Take an action on a case (accept, dispatch, claim, reply, verify…).
#[utoipa::path(post, path = "/api/v1/cases/{id}/actions", tag = "cases", params(("id" = i64, Path)),
    request_body = ActionRequest, security(("bearer" = [])),
    responses((status = 200, body = CaseView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn act(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ActionRequest>,
) -> ApiResult<Json<CaseView>> {
    let case = load_visible(&st, &me, parse_id(&id)?).await?;
    let actor = me.actor();
    // The role check first, so that a caller who may never do this hears 403, not 409.
    authorize(&case, req.action.kind(), &actor)?;
    let mut resolved = Resolved::default();
    match &req.action {
        Action::Dispatch { org, .. } => {
            if let Some(o) = st.store.org(org).await? {
                resolved.target = Some((o.as_ref(), o.level));
            }
        }
        Action::Merge { into } => {
            if let Some(t) = st.store.case(*into).await?
                && can_see(&me.actor, &t)
            {
                resolved.merge_into = Some(MergeTarget {
                    id: t.id,
                    number: t.number,
                    status: t.status,
                });
            }
        }
        _ => {}
    }
    if req.action.kind() == gridloop_domain::case::ActionKind::Reply
        && let Action::Reply { attachments, .. } = &req.action
    {
        check_attachments(&st, attachments).await?;
    }
    let cal = st.calendar();
    let policy = st.policy.clone();
    let now = st.clock.now();
    let action = req.action;
    let updated = st
        .store
        .update_case(
            case.id,
            req.expected_version,
            Box::new(move |current| {
                let ctx = Ctx {
                    now,
                    calendar: &cal,
                    policy: &policy,
                };
                decide(current, &action, &actor, &resolved, &ctx)
            }),
        )
        .await?;
    Ok(Json(CaseView::new(updated, None)))
}

/// Reveal the reporter's full name and phone. Logged on the case's timeline.
#[utoipa::path(post, path = "/api/v1/cases/{id}/reveal", tag = "cases", params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = Revealed), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn reveal(
    State(st): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Revealed>> {
    let case = load_visible(&st, &me, parse_id(&id)?).await?;
    let actor = me.actor();
    let now = st.clock.now();
    gridloop_domain::case::reveal(&case, &actor, now)?;
    let updated = st
        .store
        .update_case(
            case.id,
            None,
            Box::new(move |c| gridloop_domain::case::reveal(c, &actor, now)),
        )
        .await?;
    Ok(Json(Revealed {
        name: updated.reporter.name,
        phone: updated.reporter.phone,
    }))
}
