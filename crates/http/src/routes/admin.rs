//! Administration: users, calendars, reference lists.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use gridloop_domain::calendar::{Calendar, CalendarYear};
use gridloop_domain::role::Role;
use gridloop_store::NewUser;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{AuthUser, hash_password};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::routes::cases::org_in_reach;
use crate::routes::session::UserInfo;

fn require_admin(me: &AuthUser) -> ApiResult<()> {
    if me.actor.role.is_admin() {
        Ok(())
    } else {
        Err(ApiError::Forbidden("administrators only".into()))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateUserRequest {
    pub username: String,
    pub password: String,
    pub role: Role,
    /// Org code inside the admin's subtree.
    pub org: String,
    pub display_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub items: Vec<UserInfo>,
}

pub fn validate_username(u: &str) -> ApiResult<()> {
    if u.is_empty()
        || u.len() > 64
        || !u
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(ApiError::invalid(
            "username",
            "1–64 ASCII letters, digits, '.', '_' or '-'",
        ));
    }
    Ok(())
}

pub fn validate_password(p: &str) -> ApiResult<()> {
    if p.chars().count() < 8 || p.len() > 256 {
        return Err(ApiError::invalid("password", "8–256 characters"));
    }
    Ok(())
}

/// Users in the caller's subtree (admins only).
#[utoipa::path(get, path = "/api/v1/users", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = UserList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_users(State(st): State<AppState>, me: AuthUser) -> ApiResult<Json<UserList>> {
    require_admin(&me)?;
    let users = st.store.users_in_subtree(&me.actor.org.path).await?;
    Ok(Json(UserList {
        items: users.iter().map(UserInfo::from).collect(),
    }))
}

/// Create a user bound to an org in the caller's subtree (admins only).
#[utoipa::path(post, path = "/api/v1/users", tag = "admin", request_body = CreateUserRequest,
    security(("bearer" = [])),
    responses((status = 201, body = UserInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_user(
    State(st): State<AppState>,
    me: AuthUser,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<UserInfo>)> {
    require_admin(&me)?;
    validate_username(&req.username)?;
    validate_password(&req.password)?;
    let org = org_in_reach(&st, &me.actor, &req.org).await?;
    let pw = req.password;
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&pw))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let user = st
        .store
        .create_user(NewUser {
            display_name: req.display_name.unwrap_or_else(|| req.username.clone()),
            username: req.username,
            role: req.role,
            org: org.code,
            password_hash,
            created_at: st.clock.now(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(UserInfo::from(&user))))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarList {
    pub time_zone: String,
    pub items: Vec<CalendarYear>,
}

/// The loaded working-day calendars (holidays and 调休 make-up days).
#[utoipa::path(get, path = "/api/v1/calendars", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = CalendarList), (status = 401, body = ErrorBody)))]
pub async fn list_calendars(
    State(st): State<AppState>,
    _me: AuthUser,
) -> ApiResult<Json<CalendarList>> {
    let mut items = st.store.calendar_years().await?;
    items.sort_by_key(|y| y.year);
    Ok(Json(CalendarList {
        time_zone: st.calendar().tz.name().to_string(),
        items,
    }))
}

/// Load or replace one year's calendar (admins only). Takes effect for new deadlines at once.
#[utoipa::path(put, path = "/api/v1/calendars/{year}", tag = "admin", params(("year" = i32, Path)),
    request_body = CalendarYear, security(("bearer" = [])),
    responses((status = 200, body = CalendarYear), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn put_calendar(
    State(st): State<AppState>,
    me: AuthUser,
    Path(year): Path<String>,
    ApiJson(y): ApiJson<CalendarYear>,
) -> ApiResult<Json<CalendarYear>> {
    require_admin(&me)?;
    if year.parse::<i32>().ok() != Some(y.year) {
        return Err(ApiError::invalid(
            "year",
            "the path year and the body's year differ",
        ));
    }
    y.validate()?;
    st.store.put_calendar_year(&y).await?;
    let mut cal = Calendar::new(st.calendar().tz);
    for year in st.store.calendar_years().await? {
        cal.load_year(&year);
    }
    st.set_calendar(cal);
    Ok(Json(y))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryView {
    pub code: String,
    pub zh: String,
    pub en: String,
}

/// The case categories.
#[utoipa::path(get, path = "/api/v1/categories", tag = "admin",
    responses((status = 200, body = Vec<CategoryView>)))]
pub async fn categories() -> Json<Vec<CategoryView>> {
    Json(
        gridloop_domain::category::CATEGORIES
            .iter()
            .map(|(c, zh, en)| CategoryView {
                code: c.to_string(),
                zh: zh.to_string(),
                en: en.to_string(),
            })
            .collect(),
    )
}
