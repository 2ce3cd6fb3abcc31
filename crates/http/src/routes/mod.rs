//! The routes. Each handler carries its `#[utoipa::path]`, and is registered through
//! `OpenApiRouter`, so the served OpenAPI document lists exactly what the server does.

pub mod admin;
pub mod attachments;
pub mod cases;
pub mod channels;
pub mod hooks;
pub mod open311;
pub mod org_import;
pub mod orgs;
pub mod public;
pub mod session;
pub mod stats;

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ApiError;

/// JSON bodies are small; attachments have their own, larger limit.
pub const JSON_LIMIT: usize = 1024 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "gridloop API",
        description = "基层治理事件闭环 — the closed case loop of grassroots governance. \
            Errors are `{\"error\": {\"code\", \"message\"}}`.",
        version = env!("CARGO_PKG_VERSION")
    ),
    modifiers(&BearerAuth),
    components(schemas(crate::error::ErrorBody))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(session::login))
        .routes(routes!(session::logout))
        .routes(routes!(session::me))
        .routes(routes!(orgs::list_orgs))
        .routes(routes!(orgs::list_tower_groups))
        .routes(routes!(cases::list_cases, cases::create_case))
        .routes(routes!(cases::get_case))
        .routes(routes!(cases::act))
        .routes(routes!(cases::reveal))
        .routes(routes!(
            channels::create_night_visit,
            channels::list_night_visits
        ))
        .routes(routes!(channels::get_night_visit))
        .routes(routes!(channels::quick_report))
        .routes(routes!(channels::tower_relay))
        .routes(routes!(channels::caller_history))
        .routes(routes!(channels::record_call))
        .routes(routes!(channels::duplicates_of))
        .routes(routes!(stats::stats))
        .routes(routes!(public::create_report))
        .routes(routes!(public::track))
        .routes(routes!(public::feedback))
        .routes(routes!(public::photo))
        .routes(routes!(admin::list_users, admin::create_user))
        .routes(routes!(admin::list_calendars))
        .routes(routes!(admin::put_calendar))
        .routes(routes!(admin::categories))
        .layer(DefaultBodyLimit::max(JSON_LIMIT))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(attachments::upload))
                .routes(routes!(attachments::download))
                .routes(routes!(attachments::public_upload))
                .routes(routes!(attachments::thumbnail))
                .layer(DefaultBodyLimit::max(attachments::MAX_BYTES)),
        )
        .merge(
            OpenApiRouter::new()
                .routes(routes!(org_import::import))
                .layer(DefaultBodyLimit::max(org_import::MAX_BYTES)),
        )
        .merge(
            OpenApiRouter::new()
                .routes(routes!(hooks::camera))
                .layer(DefaultBodyLimit::max(hooks::MAX_BYTES)),
        )
}

pub fn router(state: AppState) -> Router {
    let (api, doc) = api().split_for_parts();
    let doc = std::sync::Arc::new(doc);
    api.route("/healthz", get(|| async { (StatusCode::OK, "ok") }))
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .merge(open311::router())
        .merge(crate::web::router())
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("method not allowed on this endpoint".into())
        })
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::Internal("a handler panicked".into()).into_response()
        }))
        .with_state(state)
}

/// The OpenAPI document, for tools (`gridloop openapi`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}
