//! The OpenAPI 3.1 document, generated from the handlers' annotations.

pub(crate) mod schemas;

use utoipa::openapi::header::Header;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Object, OpenApi as Document, RefOr, Type};
use utoipa::{Modify, OpenApi};

use crate::handlers::{
    account, admin, batch, health, intel, key_reports, lookup, metrics, portal, reports,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ipintel",
        description = "Self-hostable IP intelligence: location, network, and a \
            threat score with its reasons, from open data sets. Keyed routes take \
            the key in `X-API-Key` or as `Authorization: Bearer`. Every error is \
            the JSON envelope `{\"error\": {\"code\", \"message\", \"status\"}}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        lookup::full,
        lookup::geo,
        lookup::threat,
        lookup::empty,
        batch::batch,
        account::usage,
        account::create_key,
        health::healthz,
        health::readyz,
        health::openapi_json,
        intel::country,
        intel::asn,
        metrics::metrics,
        admin::reload,
        reports::report,
        reports::live,
        key_reports::list,
        portal::lookup,
        portal::me,
        portal::live,
    ),
    modifiers(&SecuritySchemes, &RateLimitHeaders),
    tags(
        (name = "lookup", description = "Address lookups; each counts against the key's daily quota"),
        (name = "account", description = "Keys and usage"),
        (name = "intel", description = "Country and network aggregates; each counts one lookup"),
        (name = "reports", description = "Abuse reports and the live feed; not counted as lookups"),
        (name = "portal", description = "Keyless routes of the web portal: lookups limited \
            per client address, the caller's address and the live feed"),
        (name = "operations", description = "Probes and this document"),
    )
)]
struct ApiDoc;

/// The OpenAPI 3.1 document describing every route of [`crate::router`].
pub fn openapi() -> Document {
    ApiDoc::openapi()
}

/// Declares the two ways of presenting a key.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let header =
            ApiKeyValue::with_description("X-API-Key", "The key, e.g. `ipintel_<id>_<secret>`.");
        components.add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(header)));
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some("The same key as a bearer token.".to_owned());
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
    }
}

/// Adds the rate-limit headers that keyed routes put on every response
/// once the key is authenticated (success, 400 and 429; not the 401/403 of
/// a refused key nor a 503 that may come before authentication), and
/// `Retry-After` on 429 and 503.
struct RateLimitHeaders;

impl Modify for RateLimitHeaders {
    fn modify(&self, openapi: &mut Document) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                add_headers(operation);
            }
        }
    }
}

fn add_headers(operation: &mut Operation) {
    let keyed = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    for (status, response) in &mut operation.responses.responses {
        let RefOr::T(response) = response else {
            continue;
        };
        if keyed && AFTER_AUTHENTICATION.contains(&status.as_str()) {
            for (name, description) in RATE_LIMIT_HEADERS {
                response
                    .headers
                    .insert(name.to_owned(), integer_header(description));
            }
        }
        if status == "429" || status == "503" {
            let retry = integer_header("Seconds to wait before retrying.");
            response.headers.insert("Retry-After".to_owned(), retry);
        }
    }
}

/// Statuses of keyed routes that are only answered to an authenticated key.
const AFTER_AUTHENTICATION: [&str; 6] = ["200", "201", "400", "429", "415", "422"];

const RATE_LIMIT_HEADERS: [(&str, &str); 3] = [
    (
        "X-RateLimit-Limit",
        "Lookups allowed per UTC day for this key.",
    ),
    ("X-RateLimit-Remaining", "Lookups left today."),
    (
        "X-RateLimit-Reset",
        "Unix seconds of the next 00:00 UTC, when the quota resets.",
    ),
];

fn integer_header(description: &str) -> RefOr<Header> {
    let mut header = Header::new(Object::with_type(Type::Integer));
    header.description = Some(description.to_owned());
    RefOr::T(header)
}
