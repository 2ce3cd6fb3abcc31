//! The web console and the residents' pages: the Vite build of `web/` (`web/dist`, made by
//! `build.rs`), embedded in the binary so that a fresh machine serves them with nothing else.
//!
//! Only `GET`/`HEAD` of the single-page app's own paths, `/assets/*` and the icon are served
//! here; everything else (`/api/*`, `/open311/*`, `/healthz`, unknown paths) stays with the
//! API router and its JSON errors. Nothing a page loads comes from outside the server.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

use crate::AppState;
use crate::error::ApiError;

#[derive(RustEmbed)]
#[folder = "../../web/dist"]
#[exclude = ".build-stamp"]
struct Dist;

/// The app's client-side routes (web/src/router.js): each answers with `index.html`.
pub const SPA_ROUTES: &[&str] = &[
    "/",
    "/report",
    "/track",
    "/login",
    "/workbench",
    "/supervision",
    "/cases",
    "/cases/{id}",
    "/inbox",
    "/dashboard",
];

/// No script, style, font or connection leaves the server; images may come from an intranet
/// tile server the user sets (blob: for photos fetched with the token).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' blob: data: http: https:; media-src 'self' blob:; connect-src 'self'; \
    font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'";

pub fn router() -> Router<AppState> {
    let mut r = Router::new();
    for path in SPA_ROUTES {
        r = r.route(path, get(index));
    }
    r.route("/assets/{*path}", get(asset)).route(
        "/favicon.svg",
        get(|h: HeaderMap| async move { file("favicon.svg", &h, false) }),
    )
}

async fn index(headers: HeaderMap) -> Response {
    file("index.html", &headers, false)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    file(&format!("assets/{path}"), &headers, true)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "json" | "map" => "application/json",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")))
}

/// One embedded file; the build's gzipped twin (`x.js.gz`) when the client takes gzip.
fn file(path: &str, headers: &HeaderMap, immutable: bool) -> Response {
    if path.contains("..") || path.ends_with(".gz") {
        return ApiError::not_found("file").into_response();
    }
    let gz = if accepts_gzip(headers) {
        Dist::get(&format!("{path}.gz"))
    } else {
        None
    };
    let (body, gzipped) = match gz {
        Some(f) => (f.data, true),
        None => match Dist::get(path) {
            Some(f) => (f.data, false),
            None if path == "index.html" => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the web console was not built into this binary (web/dist was empty)",
                )
                    .into_response();
            }
            None => return ApiError::not_found("file").into_response(),
        },
    };
    let mut res = body.into_owned().into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzipped {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if path.ends_with(".html") {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    res
}
