//! Passwords (argon2id), opaque bearer tokens stored hashed, login rate limiting, and the
//! extractor that turns a token into the acting user.

use std::collections::HashMap;
use std::sync::Mutex;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use gridloop_domain::org::OrgRef;
use gridloop_domain::role::{Actor, UserActor};
use gridloop_store::User;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

/// How long a login lasts.
pub const SESSION_HOURS: i64 = 12;

pub fn hash_password(password: &str) -> String {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).expect("16 bytes make a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A fresh random token (shown once) and its hash (stored).
pub fn new_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Failed logins per username: after `MAX_FAILURES` within `WINDOW_MINUTES`, further
/// attempts are refused with 429 until the window passes. Kept in memory: a restart
/// forgives, which is acceptable for a throttle (not a lockout).
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, (u32, DateTime<Utc>)>>,
}

const MAX_FAILURES: u32 = 5;
const WINDOW_MINUTES: i64 = 5;

impl LoginLimiter {
    pub fn check(&self, username: &str, now: DateTime<Utc>) -> Result<(), ApiError> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((n, since)) = map.get(username)
            && *n >= MAX_FAILURES
            && now - *since < Duration::minutes(WINDOW_MINUTES)
        {
            return Err(ApiError::TooManyRequests(format!(
                "too many failed logins; try again in {WINDOW_MINUTES} minutes"
            )));
        }
        Ok(())
    }

    pub fn failed(&self, username: &str, now: DateTime<Utc>) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (_, since)| now - *since < Duration::minutes(WINDOW_MINUTES));
        }
        let e = map.entry(username.to_string()).or_insert((0, now));
        if now - e.1 >= Duration::minutes(WINDOW_MINUTES) {
            *e = (0, now);
        }
        e.0 += 1;
    }

    pub fn succeeded(&self, username: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(username);
    }
}

/// The logged-in user behind `Authorization: Bearer …`; 401 otherwise.
pub struct AuthUser {
    pub user: User,
    pub actor: UserActor,
    pub token_hash: String,
}

impl AuthUser {
    pub fn actor(&self) -> Actor {
        Actor::User(self.actor.clone())
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::Unauthorized("log in first: Authorization: Bearer TOKEN".into())
            })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Unauthorized("expected Authorization: Bearer TOKEN".into()))?;
        let hash = token_hash(token);
        let user = state
            .store
            .session_user(&hash, state.clock.now())
            .await?
            .ok_or_else(|| ApiError::Unauthorized("the token is unknown or has expired".into()))?;
        let actor = UserActor {
            username: user.username.clone(),
            role: user.role,
            org: OrgRef::new(&user.org, &user.org_path),
        };
        Ok(AuthUser {
            user,
            actor,
            token_hash: hash,
        })
    }
}
