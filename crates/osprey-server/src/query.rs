//! Query strings: each route names the parameters it takes, and anything else (an
//! unknown name, a name given twice, broken percent-encoding) is a 400 naming the
//! parameter, rather than being silently ignored.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ApiError;

/// The parameters a route takes; routes not listed take none.
fn allowed(route: &str) -> &'static [&'static str] {
    match route {
        "/admin/profile" => &["seconds"],
        "/admin/cache" => &["tier"],
        "/dashboard/data" => &["since"],
        "/admin/stats.csv" => &["window"],
        // Qdrant's write and read options: every write is durable before it is
        // acknowledged, and there is one replica, so they change nothing.
        "/collections/{name}/points" | "/collections/{name}/points/delete" => {
            &["wait", "ordering", "timeout", "consistency"]
        }
        "/collections/{name}"
        | "/collections/{name}/points/query"
        | "/collections/{name}/points/count"
        | "/collections/{name}/points/scroll" => &["timeout", "consistency"],
        _ => &[],
    }
}

/// Middleware (a route layer, so the matched route is known).
pub async fn check(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("", MatchedPath::as_str);
    if let Some(query) = req.uri().query()
        && let Err(e) = validate(query, allowed(route))
    {
        return e.into_response();
    }
    next.run(req).await
}

pub fn validate(query: &str, allowed: &[&str]) -> Result<(), ApiError> {
    let mut seen: Vec<String> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(raw_name).ok_or_else(|| {
            ApiError::BadQuery(format!(
                "query parameter `{}` is not valid percent-encoded UTF-8",
                shown(raw_name)
            ))
        })?;
        if !allowed.contains(&name.as_str()) {
            let takes = if allowed.is_empty() {
                "this route takes no query parameters".to_owned()
            } else {
                format!("this route takes: {}", allowed.join(", "))
            };
            return Err(ApiError::BadQuery(format!(
                "unknown query parameter `{}` ({takes})",
                shown(&name)
            )));
        }
        if decode(raw_value).is_none() {
            return Err(ApiError::BadQuery(format!(
                "the value of query parameter `{name}` is not valid percent-encoded UTF-8"
            )));
        }
        if seen.contains(&name) {
            return Err(ApiError::BadQuery(format!(
                "query parameter `{name}` is given more than once"
            )));
        }
        seen.push(name);
    }
    Ok(())
}

/// Decodes `+` and `%XX`; `None` for a `%` without two hex digits after it, or
/// bytes that are not UTF-8.
fn decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let well_formed = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return None;
    }
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// A name as an error message may quote it: short, and printable.
fn shown(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(query: &str, allowed: &[&str]) -> Option<String> {
        validate(query, allowed).err().map(|e| e.to_string())
    }

    #[test]
    fn only_the_routes_own_parameters_pass() {
        assert_eq!(message("since=3", &["since"]), None);
        assert_eq!(message("since=3&", &["since"]), None);
        assert_eq!(message("", &[]), None);
        assert_eq!(message("s%69nce=1+2", &["since"]), None);
        let m = message("since=3&limit=2", &["since"]).unwrap_or_default();
        assert!(m.contains("`limit`") && m.contains("takes: since"), "{m}");
        let m = message("x", &[]).unwrap_or_default();
        assert!(
            m.contains("`x`") && m.contains("no query parameters"),
            "{m}"
        );
        let m = message("since=1&since=2", &["since"]).unwrap_or_default();
        assert!(m.contains("more than once"), "{m}");
    }

    #[test]
    fn broken_percent_encoding_is_named() {
        for q in ["since=%zz", "since=%4", "since=%ff", "since=%"] {
            let m = message(q, &["since"]).unwrap_or_default();
            assert!(
                m.contains("`since`") && m.contains("percent-encoded"),
                "{q}: {m}"
            );
        }
        let m = message("%zz=1", &["since"]).unwrap_or_default();
        assert!(m.contains("`%zz`"), "{m}");
        let m = message("a%0Ab=1", &[]).unwrap_or_default();
        assert!(m.contains("`a?b`"), "{m}");
    }
}
