//! The route table and the router built from it.

use std::any::Any;

use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::middleware;
use axum::response::Response;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

use crate::access_log::access_log;
use crate::auth::require_key;
use crate::error::envelope_response;
use crate::handlers::{
    account, admin, batch, fallback, health, intel, key_reports, lookup, metrics, portal, reports,
};
use crate::state::AppState;
use crate::ui;

/// One route: method, path template and whether it needs a key.
#[derive(Debug, Clone)]
pub(crate) struct RouteSpec {
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    pub(crate) keyed: bool,
}

type Entry = (RouteSpec, MethodRouter<AppState>);

fn entry<H, T>(method: Method, path: &'static str, keyed: bool, handler: H) -> Entry
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone())
        .unwrap_or_else(|_| panic!("route table uses a non-standard method {method}"));
    let spec = RouteSpec {
        method,
        path,
        keyed,
    };
    (spec, on(filter, handler))
}

/// Every route of the API. The router is built from this table only, so
/// the table is the truth the OpenAPI tests compare against.
fn table() -> Vec<Entry> {
    vec![
        entry(Method::GET, "/v1/ip/{ip}", true, lookup::full),
        entry(Method::GET, "/v1/ip/{ip}/geo", true, lookup::geo),
        entry(Method::GET, "/v1/ip/{ip}/threat", true, lookup::threat),
        entry(Method::GET, "/v1/ip/", true, lookup::empty),
        entry(Method::POST, "/v1/ip/batch", true, batch::batch),
        entry(Method::GET, "/v1/usage", true, account::usage),
        entry(Method::POST, "/v1/keys", false, account::create_key),
        entry(Method::GET, "/healthz", false, health::healthz),
        entry(Method::GET, "/readyz", false, health::readyz),
        entry(Method::GET, "/openapi.json", false, health::openapi_json),
        entry(Method::GET, "/v1/ip/country/{cc}", true, intel::country),
        entry(Method::GET, "/v1/ip/asn/{asn}", true, intel::asn),
        entry(Method::GET, "/metrics", false, metrics::metrics),
        entry(Method::POST, "/v1/admin/reload", false, admin::reload),
        entry(Method::POST, "/v1/ip/report", true, reports::report),
        entry(Method::GET, "/v1/ip/threats/live", true, reports::live),
        entry(Method::GET, "/v1/reports", true, key_reports::list),
        entry(Method::GET, "/v1/portal/ip/{ip}", false, portal::lookup),
        entry(Method::GET, "/v1/portal/me", false, portal::me),
        entry(Method::GET, "/v1/portal/threats/live", false, portal::live),
    ]
}

/// Method and path template of every API route [`router`] serves, as the
/// router is built from them (HEAD is also answered wherever GET is). The
/// web interface's pages and assets are not API routes and are not listed.
pub fn routes() -> Vec<(Method, &'static str)> {
    table()
        .into_iter()
        .map(|(spec, _)| (spec.method, spec.path))
        .collect()
}

/// The distinct path templates of the route table and of the web
/// interface (metrics labels).
pub(crate) fn route_paths() -> Vec<&'static str> {
    let mut paths: Vec<&'static str> = table().into_iter().map(|(spec, _)| spec.path).collect();
    paths.extend(ui::PATHS);
    paths.dedup();
    paths
}

/// Builds the application: keyed routes behind key authentication, open
/// routes, the web interface, envelope answers for unknown paths (404) and
/// wrong methods (405), panics turned into a 500 envelope, and one access
/// log line per request.
pub fn router(state: AppState) -> Router {
    let mut keyed = Router::new();
    let mut open = Router::new();
    for (spec, method_router) in table() {
        if spec.keyed {
            keyed = keyed.route(spec.path, method_router);
        } else {
            open = open.route(spec.path, method_router);
        }
    }
    let keyed = keyed.route_layer(middleware::from_fn_with_state(state.clone(), require_key));

    let api = Router::new().merge(keyed).merge(open);
    finish(api.merge(ui::router()), state)
}

/// Adds what every route shares: the envelope fallbacks, panic recovery
/// and the access log.
fn finish(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .fallback(fallback::not_found)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(state.clone(), access_log))
        .with_state(state)
}

/// Logs a handler panic once and answers with the generic 500 envelope.
fn panic_response(payload: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!(panic = %panic_cause(payload.as_ref()), "request handler panicked");
    envelope_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
}

/// The message of a panic, when it has one.
pub(crate) fn panic_cause(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-text panic payload")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arc_swap::ArcSwap;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use ipintel_core::Snapshot;
    use ipintel_store::{Accounts, PlanLimits, SqliteStore, Store};
    use tower::ServiceExt;

    use super::*;
    use crate::state::HttpConfig;

    async fn state(dir: &tempfile::TempDir) -> AppState {
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("t.db")).await.unwrap());
        let accounts = Accounts::open(store, PlanLimits::default()).await.unwrap();
        let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::empty()));
        AppState::new(snapshot, accounts, HttpConfig::default())
    }

    async fn boom() -> &'static str {
        panic!("handler exploded")
    }

    #[tokio::test]
    async fn handler_panic_becomes_a_500_envelope() {
        let dir = tempfile::tempdir().unwrap();
        let app = finish(Router::new().route("/boom", get(boom)), state(&dir).await);

        let request = Request::get("/boom").body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();

        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["error"]["code"], "internal");
        assert_eq!(body["error"]["status"], 500);
        assert!(!body.to_string().contains("exploded"));
    }

    #[test]
    fn route_table_has_no_duplicates() {
        let mut seen = std::collections::HashSet::new();
        for (method, path) in routes() {
            assert!(seen.insert((method.clone(), path)), "{method} {path} twice");
        }
    }
}
