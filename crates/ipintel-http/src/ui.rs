//! The web interface: the portal at `/`, the dashboard under `/dashboard`,
//! and their assets, all embedded in the binary at build time (see
//! `build.rs`).
//!
//! These routes are pages, not API: they are kept out of the API route
//! table (and so of the OpenAPI document), and every answer carries a strict
//! Content-Security-Policy. Hashed assets under `/assets/` are cached for a
//! year; pages are revalidated on every load.

use axum::extract::{Path, Request};
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::ApiError;
use crate::state::AppState;

/// One embedded file of `web/dist`.
#[derive(Debug)]
pub(crate) struct Asset {
    /// Path below `web/dist`, `/`-separated.
    pub(crate) path: &'static str,
    pub(crate) content_type: &'static str,
    /// A quoted hash of the contents.
    pub(crate) etag: &'static str,
    pub(crate) body: &'static [u8],
}

mod embedded {
    use super::Asset;
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

/// The policy of every page and asset: nothing from other origins, no
/// inline script or style, no framing.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'self'; object-src 'none'";

/// Path templates of the interface's routes (for the metrics labels).
pub(crate) const PATHS: [&str; 5] = [
    "/",
    "/dashboard",
    "/dashboard/{*page}",
    "/assets/{*file}",
    "/favicon.svg",
];

/// Served in place of the interface when `web/dist` was missing at build time.
const NOT_BUILT: &str = "<!doctype html>
<html lang=\"en\">
<head><meta charset=\"utf-8\"><title>ipintel: web interface not built</title></head>
<body>
<h1>The web interface was not built</h1>
<p>This ipintel binary was compiled without the portal and dashboard, because
<code>web/dist</code> did not exist. To include them, run
<code>scripts/build_web.sh</code> (it needs Node.js and npm), then build
ipintel again; <code>scripts/serve.sh</code> does both.</p>
<p>The API works without them: see <a href=\"/openapi.json\">/openapi.json</a>.</p>
</body>
</html>
";

/// The interface's routes, each answer with the security headers.
pub(crate) fn router() -> Router<AppState> {
    let [root, dashboard, dashboard_page, assets, favicon] = PATHS;
    Router::new()
        .route(root, get(page))
        .route(dashboard, get(page))
        .route(dashboard_page, get(page))
        .route(assets, get(asset))
        .route(favicon, get(favicon_svg))
        .layer(middleware::from_fn(security_headers))
}

/// Whether the interface is embedded (else the not-built page is served).
pub fn is_built() -> bool {
    embedded::BUILT
}

fn find(path: &str) -> Option<&'static Asset> {
    embedded::ASSETS
        .binary_search_by(|asset| asset.path.cmp(path))
        .ok()
        .and_then(|i| embedded::ASSETS.get(i))
}

/// The single page of the interface; the client-side router picks the
/// view from the URL.
async fn page(headers: HeaderMap) -> Response {
    match find("index.html") {
        Some(index) => serve(index, &headers, "no-cache"),
        None => {
            let mut response = (StatusCode::OK, NOT_BUILT).into_response();
            set(
                &mut response,
                header::CONTENT_TYPE,
                "text/html; charset=utf-8",
            );
            set(&mut response, header::CACHE_CONTROL, "no-cache");
            response
        }
    }
}

/// A file of `web/dist/assets`, named by a hash of its contents.
async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match find(&format!("assets/{file}")) {
        Some(asset) => serve(asset, &headers, "public, max-age=31536000, immutable"),
        None => ApiError::NotFound.into_response(),
    }
}

async fn favicon_svg(headers: HeaderMap) -> Response {
    match find("favicon.svg") {
        Some(icon) => serve(icon, &headers, "public, max-age=86400"),
        None => ApiError::NotFound.into_response(),
    }
}

/// `asset` with its type, ETag and `cache_control`; 304 when the client
/// already holds this version.
fn serve(asset: &'static Asset, headers: &HeaderMap, cache_control: &'static str) -> Response {
    let held = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == asset.etag));
    let mut response = if held {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, asset.body).into_response()
    };
    set(&mut response, header::CONTENT_TYPE, asset.content_type);
    set(&mut response, header::ETAG, asset.etag);
    set(&mut response, header::CACHE_CONTROL, cache_control);
    response
}

/// Adds the security headers to every answer of the interface's routes.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    set(
        &mut response,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(&mut response, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(&mut response, header::REFERRER_POLICY, "no-referrer");
    set(&mut response, header::X_FRAME_OPTIONS, "DENY");
    response
}

fn set(response: &mut Response, name: HeaderName, value: &'static str) {
    response
        .headers_mut()
        .insert(name, HeaderValue::from_static(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_sorted_for_the_binary_search() {
        let paths: Vec<&str> = embedded::ASSETS.iter().map(|a| a.path).collect();
        let mut sorted = paths.clone();
        sorted.sort_unstable();
        assert_eq!(paths, sorted);
    }

    #[test]
    fn a_build_has_its_page_and_no_source_maps() {
        if !is_built() {
            return;
        }
        assert!(find("index.html").is_some());
        assert!(embedded::ASSETS.iter().all(|a| !a.path.ends_with(".map")));
        let index = find("index.html").map(|a| a.body).unwrap_or_default();
        let text = String::from_utf8_lossy(index);
        for tag in text.split("<script").skip(1) {
            let open = tag.split('>').next().unwrap_or_default();
            assert!(
                open.contains(" src="),
                "an inline script in index.html: {tag}"
            );
        }
        assert!(!text.contains("<style"), "a style element in index.html");
        assert!(!text.contains(" style="), "a style attribute in index.html");
    }

    #[test]
    fn the_not_built_page_says_how_to_build() {
        assert!(NOT_BUILT.contains("scripts/build_web.sh"));
        assert!(!NOT_BUILT.contains("style"));
    }
}
