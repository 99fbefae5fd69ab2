//! The web interface's pages and assets: served from the binary with a
//! strict Content-Security-Policy, kept apart from the API.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use common::{temp_db, Options, TestServer};
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' \
    data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; \
    object-src 'none'";

async fn fetch(server: &TestServer, path: &str) -> reqwest::Response {
    server.client.get(server.url(path)).send().await.unwrap()
}

fn assert_ui_headers(response: &reqwest::Response) {
    let headers = response.headers();
    assert_eq!(headers["content-security-policy"], CSP);
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["x-frame-options"], "DENY");
}

#[tokio::test]
async fn pages_are_html_with_a_strict_policy_and_no_cache() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;

    for path in [
        "/",
        "/dashboard",
        "/dashboard/country/US",
        "/dashboard/asn/15169",
    ] {
        let response = fetch(&server, path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_ui_headers(&response);
        assert_eq!(response.headers()[CACHE_CONTROL], "no-cache", "{path}");
        let content_type = response.headers()[CONTENT_TYPE].to_str().unwrap();
        assert!(
            content_type.starts_with("text/html"),
            "{path}: {content_type}"
        );
        let body = response.text().await.unwrap();
        assert!(body.contains("<html"), "{path}");
        assert!(!body.contains(" style="), "{path}: a style attribute");
    }
}

#[tokio::test]
async fn the_built_interface_or_a_page_saying_how_to_build_it() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let body = fetch(&server, "/").await.text().await.unwrap();
    if ipintel_http::web_interface_built() {
        assert!(body.contains("/assets/"), "{body}");
    } else {
        assert!(body.contains("scripts/build_web.sh"), "{body}");
    }
}

/// Every asset the page links to is served, long-cached, with the policy;
/// a client that holds it gets 304.
#[tokio::test]
async fn assets_are_long_cached_and_revalidate_by_etag() {
    if !ipintel_http::web_interface_built() {
        return;
    }
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let page = fetch(&server, "/").await.text().await.unwrap();
    let linked: Vec<&str> = page
        .split('"')
        .filter(|part| part.starts_with("/assets/"))
        .collect();
    assert!(!linked.is_empty(), "{page}");

    for path in linked {
        let response = fetch(&server, path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_ui_headers(&response);
        let cache = response.headers()[CACHE_CONTROL].to_str().unwrap();
        assert!(cache.contains("max-age=31536000"), "{path}: {cache}");
        let etag = response.headers()[ETAG].clone();
        let again = server
            .client
            .get(server.url(path))
            .header(IF_NONE_MATCH, etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }
}

#[tokio::test]
async fn unknown_assets_and_api_paths_are_json_404s() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;

    let asset = fetch(&server, "/assets/nothing-here.js").await;
    assert_eq!(asset.status(), 404);
    assert_ui_headers(&asset);

    for path in ["/v1/nothing", "/v1/portal/nothing", "/nowhere"] {
        let reply = common::Reply::from(fetch(&server, path).await).await;
        reply.assert_error(404, "not_found");
    }
}

#[tokio::test]
async fn api_routes_are_untouched_and_pages_are_not_in_the_api_table() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;

    let health = fetch(&server, "/healthz").await;
    assert!(health.headers().get("content-security-policy").is_none());
    let routes = ipintel_http::routes();
    assert!(routes.iter().all(|(_, path)| path.starts_with("/v1/")
        || ["/healthz", "/readyz", "/metrics", "/openapi.json"].contains(path)));

    let wrong_method = server.client.post(server.url("/")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
}
