//! The body of `POST /v1/ip/report`: JSON or a form, read into the same
//! fields, then checked one field at a time (each error names its field).

use std::collections::HashMap;
use std::net::IpAddr;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use ipintel_core::addr::parse_ip;
use ipintel_core::reports::{ReportCategories, Severity, WINDOW_SECS};
use ipintel_core::reserved::classify;
use ipintel_store::MAX_COMMENT_CHARS;
use serde_json::Value;

use super::body::{self, BodyError};
use crate::clock::parse_rfc3339;
use crate::error::ApiError;

/// Largest body read, in bytes.
const MAX_BODY: usize = 64 * 1024;
/// How far ahead of the service's clock `reported_at` may be (clock skew).
pub(crate) const MAX_SKEW_SECS: i64 = 300;
/// Severity of a report that gives none.
const DEFAULT_SEVERITY: Severity = Severity::Medium;
/// Confidence of a report that gives none.
const DEFAULT_CONFIDENCE: u8 = 75;

/// A checked report request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReportInput {
    pub(crate) ip: IpAddr,
    pub(crate) categories: ReportCategories,
    pub(crate) severity: Severity,
    pub(crate) confidence: u8,
    pub(crate) comment: Option<String>,
    pub(crate) reported_at: i64,
}

/// The body's fields as text (JSON numbers and arrays turned into text).
type Fields = HashMap<String, String>;

fn invalid(field: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::InvalidField {
        field,
        message: message.into(),
    }
}

/// Reads the body as JSON (`application/json`) or as a form (a form
/// content type, or none, as `curl -d` sends). A field given twice is
/// refused rather than read as the last (or first) of its values.
pub(crate) async fn read_fields(headers: &HeaderMap, body: Body) -> Result<Fields, ApiError> {
    let kind = content_type(headers)?;
    let bytes = read_body(body, MAX_BODY).await?;
    let pairs = match kind {
        BodyKind::Json => json_pairs(&bytes)?,
        BodyKind::Form => serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
            .map_err(|err| invalid("body", format!("the form does not parse: {err}")))?,
    };
    let mut fields = Fields::new();
    for (name, value) in pairs {
        if let Some(field) = known_field(&name) {
            // `categories` is another name of `category`: one field.
            let twice = fields.contains_key(&name)
                || (field == "category" && fields.contains_key("categories"))
                || (field == "categories" && fields.contains_key("category"));
            if twice {
                return Err(invalid(field, format!("`{field}` is given more than once")));
            }
        }
        fields.insert(name, value);
    }
    Ok(fields)
}

/// The whole body, up to `limit` bytes, each way it can fail told apart.
async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    body::read(body, limit).await.map_err(|err| match err {
        BodyError::TooLarge => invalid("body", format!("the body is larger than {limit} bytes")),
        BodyError::Broken(cause) => invalid("body", format!("the body could not be read: {cause}")),
        BodyError::TimedOut => ApiError::BodyTimeout,
    })
}

enum BodyKind {
    Json,
    Form,
}

fn content_type(headers: &HeaderMap) -> Result<BodyKind, ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(BodyKind::Form);
    };
    let text = value.to_str().unwrap_or_default().to_ascii_lowercase();
    let essence = text.split(';').next().unwrap_or_default().trim();
    match essence {
        "application/json" => Ok(BodyKind::Json),
        "application/x-www-form-urlencoded" => Ok(BodyKind::Form),
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

/// The members of a JSON object body, in order and with repeats kept, as
/// text (see [`json_text`]); members of other types are dropped unless
/// they are report fields.
fn json_pairs(bytes: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let Members(members) = serde_json::from_slice(bytes).map_err(|err| {
        if err.is_data() {
            invalid("body", "the body must be a JSON object")
        } else {
            invalid("body", format!("the body is not JSON: {err}"))
        }
    })?;
    let mut pairs = Vec::with_capacity(members.len());
    for (name, value) in members {
        if let Some(text) = json_text(&value) {
            pairs.push((name, text));
        } else if let Some(field) = known_field(&name) {
            return Err(invalid(field, format!("`{field}` has the wrong JSON type")));
        }
    }
    Ok(pairs)
}

/// A JSON object read member by member, so that a repeated name is seen
/// (a map would keep only one of its values).
struct Members(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// Strings and numbers as text, arrays of them comma-joined; null as absent.
fn json_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(|parts| parts.join(",")),
        _ => None,
    }
}

const FIELDS: [&str; 7] = [
    "ip",
    "category",
    "categories",
    "severity",
    "confidence",
    "comment",
    "reported_at",
];

fn known_field(name: &str) -> Option<&'static str> {
    FIELDS.into_iter().find(|f| *f == name)
}

/// Checks every field; the first bad one is the error.
pub(crate) fn check(fields: &Fields, now: i64) -> Result<ReportInput, ApiError> {
    let text = |name: &str| fields.get(name).map(|s| s.trim()).filter(|s| !s.is_empty());
    Ok(ReportInput {
        ip: ip(text("ip"))?,
        categories: categories(text("category").or_else(|| text("categories")))?,
        severity: severity(text("severity"))?,
        confidence: confidence(text("confidence"))?,
        comment: fields.get("comment").and_then(|c| comment(c)),
        reported_at: reported_at(text("reported_at"), now)?,
    })
}

fn ip(text: Option<&str>) -> Result<IpAddr, ApiError> {
    let text = text.ok_or_else(|| invalid("ip", "`ip` is required"))?;
    let ip = parse_ip(text).map_err(|err| invalid("ip", format!("`ip`: {err}")))?;
    if let Some(range) = classify(ip) {
        let message = format!(
            "`ip` is in the reserved range {} ({}); reserved addresses cannot be reported",
            range.network, range.name
        );
        return Err(invalid("ip", message));
    }
    Ok(ip)
}

fn categories(text: Option<&str>) -> Result<ReportCategories, ApiError> {
    let text = text.ok_or_else(|| invalid("category", "`category` is required"))?;
    ReportCategories::parse_list(text).map_err(|err| {
        invalid(
            "category",
            format!("`category`: {err}; see the documented names and numbers"),
        )
    })
}

fn severity(text: Option<&str>) -> Result<Severity, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_SEVERITY);
    };
    Severity::parse(text).ok_or_else(|| {
        invalid(
            "severity",
            "`severity` must be low, medium, high, critical or 1 to 4",
        )
    })
}

fn confidence(text: Option<&str>) -> Result<u8, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_CONFIDENCE);
    };
    text.parse::<u8>()
        .ok()
        .filter(|c| *c <= 100)
        .ok_or_else(|| invalid("confidence", "`confidence` must be a whole number 0 to 100"))
}

/// Trimmed, control characters but tab and newline dropped, cut to the cap.
fn comment(text: &str) -> Option<String> {
    let clean: String = text
        .trim()
        .chars()
        .filter(|c| (!c.is_control() || *c == '\n' || *c == '\t') && !is_bidi_control(*c))
        .take(MAX_COMMENT_CHARS)
        .collect();
    (!clean.is_empty()).then_some(clean)
}

/// Characters that reorder how the text around them is shown (embeddings,
/// overrides, isolates and marks): a comment could use them to look like
/// something else in the dashboard and the live feed.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn reported_at(text: Option<&str>, now: i64) -> Result<i64, ApiError> {
    let Some(text) = text else {
        return Ok(now);
    };
    let at = match text.parse::<i64>() {
        Ok(unix) => unix,
        Err(_) => parse_rfc3339(text).ok_or_else(|| {
            invalid(
                "reported_at",
                "`reported_at` must be RFC 3339 or unix seconds",
            )
        })?,
    };
    if at > now + MAX_SKEW_SECS {
        return Err(invalid("reported_at", "`reported_at` is in the future"));
    }
    if at < now - WINDOW_SECS {
        return Err(invalid(
            "reported_at",
            "`reported_at` is more than 30 days ago",
        ));
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn field_of(pairs: &[(&str, &str)]) -> &'static str {
        match check(&fields(pairs), NOW) {
            Err(ApiError::InvalidField { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_fill_optional_fields() {
        let input = check(&fields(&[("ip", "203.0.113.9"), ("category", "22")]), NOW);
        assert!(input.is_err(), "documentation space is reserved");
        let input = check(&fields(&[("ip", "1.2.3.4"), ("category", "22,14")]), NOW).unwrap();
        assert_eq!(input.severity, Severity::Medium);
        assert_eq!(input.confidence, 75);
        assert_eq!(input.reported_at, NOW);
        assert_eq!(input.comment, None);
        assert_eq!(input.categories.to_names(), "port_scan,ssh_bruteforce");
    }

    #[test]
    fn each_bad_field_is_named() {
        let ok = [("ip", "1.2.3.4"), ("category", "ssh_bruteforce")];
        assert_eq!(field_of(&[("category", "22")]), "ip");
        assert_eq!(field_of(&[("ip", "10.0.0.1"), ("category", "22")]), "ip");
        assert_eq!(field_of(&[("ip", "1.2.3.04"), ("category", "22")]), "ip");
        assert_eq!(field_of(&[("ip", "1.2.3.4")]), "category");
        assert_eq!(
            field_of(&[("ip", "1.2.3.4"), ("category", "99")]),
            "category"
        );
        let with = |extra: (&'static str, &'static str)| {
            let mut pairs = ok.to_vec();
            pairs.push(extra);
            field_of(&pairs)
        };
        assert_eq!(with(("severity", "5")), "severity");
        assert_eq!(with(("confidence", "101")), "confidence");
        assert_eq!(with(("confidence", "-1")), "confidence");
        assert_eq!(with(("reported_at", "yesterday")), "reported_at");
        assert_eq!(with(("reported_at", "1790001000")), "reported_at");
        assert_eq!(with(("reported_at", "1700000000")), "reported_at");
    }

    #[test]
    fn times_in_both_forms() {
        let base = [("ip", "1.2.3.4"), ("category", "22")];
        let mut pairs = base.to_vec();
        pairs.push(("reported_at", "2026-09-21T14:13:20Z"));
        assert_eq!(check(&fields(&pairs), NOW).unwrap().reported_at, NOW);
        let mut pairs = base.to_vec();
        pairs.push(("reported_at", "1789999990"));
        assert_eq!(check(&fields(&pairs), NOW).unwrap().reported_at, NOW - 10);
    }

    #[test]
    fn comments_are_capped_and_cleaned() {
        let long = "x".repeat(5000);
        assert_eq!(comment(&long).unwrap().chars().count(), MAX_COMMENT_CHARS);
        assert_eq!(comment(" a\u{0}b \n").as_deref(), Some("ab"));
        assert_eq!(
            comment("evil\u{202E}txt.exe\u{2066}").as_deref(),
            Some("eviltxt.exe")
        );
        assert_eq!(comment("   "), None);
    }

    #[test]
    fn json_arrays_and_numbers_become_text() {
        let pairs =
            json_pairs(br#"{"ip":"1.2.3.4","category":[22,"port_scan"],"confidence":90}"#).unwrap();
        assert_eq!(
            pairs[1..],
            [
                ("category".to_owned(), "22,port_scan".to_owned()),
                ("confidence".to_owned(), "90".to_owned())
            ]
        );
        assert!(matches!(
            json_pairs(br#"{"ip":"1.2.3.4","severity":{"x":1}}"#),
            Err(ApiError::InvalidField {
                field: "severity",
                ..
            })
        ));
    }

    async fn read(content_type: &str, body: &str) -> Result<Fields, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        read_fields(&headers, Body::from(body.to_owned())).await
    }

    fn refused_field(result: Result<Fields, ApiError>) -> (&'static str, String) {
        match result {
            Err(ApiError::InvalidField { field, message }) => (field, message),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_field_given_twice_is_refused_in_json_and_forms() {
        let json = read(
            "application/json",
            r#"{"ip":"1.2.3.4","category":"22","ip":"5.6.7.8"}"#,
        );
        let (field, message) = refused_field(json.await);
        assert_eq!(field, "ip");
        assert!(message.contains("more than once"), "{message}");
        let form = read(
            "application/x-www-form-urlencoded",
            "ip=1.2.3.4&category=22&category=14",
        );
        assert_eq!(refused_field(form.await).0, "category");
        let both = read(
            "application/x-www-form-urlencoded",
            "ip=1.2.3.4&category=22&categories=14",
        );
        assert_eq!(refused_field(both.await).0, "categories");

        // Unknown members may repeat; they are not read.
        let fine = read(
            "application/json",
            r#"{"ip":"1.2.3.4","category":"22","x":1,"x":2}"#,
        );
        assert_eq!(fine.await.unwrap()["ip"], "1.2.3.4");
    }

    #[tokio::test]
    async fn bodies_that_are_not_objects_or_too_large_say_so() {
        let (field, message) = refused_field(read("application/json", "[1, 2]").await);
        assert_eq!(field, "body");
        assert!(message.contains("must be a JSON object"), "{message}");
        let (_, message) = refused_field(read("application/json", "{oops").await);
        assert!(message.contains("not JSON"), "{message}");
        let large = format!("ip=1.2.3.4&comment={}", "x".repeat(MAX_BODY));
        let (_, message) = refused_field(read("application/x-www-form-urlencoded", &large).await);
        assert!(message.contains("larger than 65536 bytes"), "{message}");
    }
}
