use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Duration;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{self, AuthUser};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub token: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub user: UserInfo,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserInfo {
    pub username: String,
    pub display_name: String,
    pub role: gridloop_domain::role::Role,
    /// The user's org code.
    pub org: String,
}

impl From<&gridloop_store::User> for UserInfo {
    fn from(u: &gridloop_store::User) -> Self {
        UserInfo {
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            role: u.role,
            org: u.org.clone(),
        }
    }
}

/// Log in; returns a bearer token.
#[utoipa::path(post, path = "/api/v1/login", tag = "session", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody),
              (status = 429, body = ErrorBody)))]
pub async fn login(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let now = st.clock.now();
    st.login_limiter.check(&req.username, now)?;
    let user = st.store.user_by_username(&req.username).await?;
    let ok = match &user {
        Some(u) => {
            let (pw, hash) = (req.password.clone(), u.password_hash.clone());
            tokio::task::spawn_blocking(move || auth::verify_password(&pw, &hash))
                .await
                .unwrap_or(false)
        }
        None => false,
    };
    let Some(user) = user.filter(|_| ok) else {
        st.login_limiter.failed(&req.username, now);
        return Err(ApiError::Unauthorized("wrong username or password".into()));
    };
    st.login_limiter.succeeded(&req.username);
    let (token, hash) = auth::new_token();
    let expires_at = now + Duration::hours(auth::SESSION_HOURS);
    st.store
        .create_session(&hash, user.id, now, expires_at)
        .await?;
    Ok(Json(LoginResponse {
        token,
        expires_at,
        user: UserInfo::from(&user),
    }))
}

/// Log out: the token stops working at once.
#[utoipa::path(post, path = "/api/v1/logout", tag = "session", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(State(st): State<AppState>, me: AuthUser) -> ApiResult<StatusCode> {
    st.store.delete_session(&me.token_hash).await?;
    st.sessions.forget(&me.token_hash);
    Ok(StatusCode::NO_CONTENT)
}

/// The logged-in user.
#[utoipa::path(get, path = "/api/v1/me", tag = "session", security(("bearer" = [])),
    responses((status = 200, body = UserInfo), (status = 401, body = ErrorBody)))]
pub async fn me(me: AuthUser) -> Json<UserInfo> {
    Json(UserInfo::from(&me.user))
}
