//! The server under test: its address, its API, and detecting that API.

use std::rc::Rc;

use bytes::Bytes;

use crate::client::{self, Endpoint};
use crate::error::{BenchError, Result};
use crate::spec::RunSpec;

/// Which request shape the server speaks.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ApiChoice {
    /// Try `/embed`, then `/v1/embeddings`.
    Auto,
    /// text-embeddings-inference: `POST /embed {"inputs": [...]}`.
    Tei,
    /// OpenAI: `POST /v1/embeddings {"input": [...]}`.
    Openai,
}

/// A resolved API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Tei,
    OpenAi,
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Self::Tei => "tei",
            Self::OpenAi => "openai",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Self::Tei => "/embed",
            Self::OpenAi => "/v1/embeddings",
        }
    }
}

/// `http://host:port/prefix` split into what the client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUrl {
    pub authority: String,
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing slash (`""` for the root).
    pub base: String,
    /// The API named by the URL's path, if it ends in `/embed` or `/v1/embeddings`.
    pub api_from_path: Option<Api>,
}

pub fn parse_url(url: &str) -> Result<ParsedUrl> {
    let bad = |m: &str| BenchError::invalid(format!("--url {url:?}"), m.to_string());
    let uri: hyper::Uri = url.trim().parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(bad(
                "https is not supported; benchmark the server over plain http",
            ));
        }
        _ => return Err(bad("expected http://HOST:PORT")),
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = authority.port_u16().unwrap_or(80);
    let mut base = uri.path().trim_end_matches('/').to_string();
    let mut api_from_path = None;
    for api in [Api::OpenAi, Api::Tei] {
        if let Some(prefix) = base.strip_suffix(api.suffix()) {
            api_from_path = Some(api);
            base = prefix.to_string();
            break;
        }
    }
    Ok(ParsedUrl {
        authority: authority.as_str().to_string(),
        host,
        port,
        base,
        api_from_path,
    })
}

/// A server ready to be loaded: its endpoint for the chosen API.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub api: Api,
    pub endpoint: Rc<Endpoint>,
}

/// Resolves the address, then picks the API: from the flag, from the URL's path,
/// or by probing. The probe also proves the server answers before any load.
pub async fn resolve(spec: &RunSpec) -> Result<Target> {
    let parsed = parse_url(&spec.url)?;
    let addr = tokio::net::lookup_host((parsed.host.as_str(), parsed.port))
        .await
        .map_err(|e| BenchError::Target(format!("cannot resolve {}: {e}", parsed.host)))?
        .next()
        .ok_or_else(|| BenchError::Target(format!("{} has no address", parsed.host)))?;
    let base = Endpoint::new(
        addr,
        &parsed.authority,
        String::new(),
        &spec.headers,
        spec.timeout,
    )?;
    let forced = match spec.api {
        ApiChoice::Tei => Some(Api::Tei),
        ApiChoice::Openai => Some(Api::OpenAi),
        ApiChoice::Auto => parsed.api_from_path,
    };
    let candidates: Vec<Api> = match forced {
        Some(api) => vec![api],
        None => vec![Api::Tei, Api::OpenAi],
    };
    let mut answers = Vec::new();
    for api in candidates {
        let path = format!("{}{}", parsed.base, api.suffix());
        let endpoint = base.with_path(path.clone());
        let body = probe_body(api, spec.model.as_deref());
        let (status, bytes) = client::probe(&endpoint, body).await?;
        if status.is_success() && looks_like(api, &bytes) {
            let origin = format!("http://{}", parsed.authority);
            return Ok(Target {
                url: format!("{origin}{path}"),
                api,
                endpoint: Rc::new(endpoint),
            });
        }
        let snippet: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
        answers.push(format!("POST {path} → {status} {snippet}"));
        if status == hyper::StatusCode::UNAUTHORIZED || status == hyper::StatusCode::FORBIDDEN {
            answers.push("(the server wants credentials: --api-key or --header)".into());
            break;
        }
    }
    Err(BenchError::Target(format!(
        "{} does not answer as an embedding server: {}",
        spec.url,
        answers.join("; ")
    )))
}

fn probe_body(api: Api, model: Option<&str>) -> Bytes {
    let text = "osprey bench probe";
    let value = match api {
        Api::Tei => serde_json::json!({ "inputs": [text], "normalize": true }),
        Api::OpenAi => match model {
            Some(m) => serde_json::json!({ "input": [text], "model": m }),
            None => serde_json::json!({ "input": [text] }),
        },
    };
    Bytes::from(value.to_string())
}

/// A cheap shape check: TEI answers an array of vectors (many Python services wrap
/// it as `{"embeddings": [...]}`, accepted too), OpenAI an object with `data`.
fn looks_like(api: Api, body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    match api {
        Api::Tei => v
            .as_array()
            .or_else(|| v.get("embeddings").and_then(|e| e.as_array()))
            .is_some_and(|a| a.len() == 1 && a[0].is_array()),
        Api::OpenAi => v
            .get("data")
            .and_then(|d| d.as_array())
            .is_some_and(|a| a.len() == 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_base_and_api() {
        let p = parse_url("http://127.0.0.1:8080").expect("parses");
        assert_eq!(
            (p.host.as_str(), p.port, p.base.as_str()),
            ("127.0.0.1", 8080, "")
        );
        assert_eq!(p.api_from_path, None);
        let p = parse_url("http://localhost:9000/prefix/v1/embeddings").expect("parses");
        assert_eq!(p.base, "/prefix");
        assert_eq!(p.api_from_path, Some(Api::OpenAi));
        let p = parse_url("http://h/embed/").expect("parses");
        assert_eq!(
            (p.port, p.base.as_str(), p.api_from_path),
            (80, "", Some(Api::Tei))
        );
        assert!(parse_url("https://h:1").is_err());
        assert!(parse_url("127.0.0.1:8080").is_err());
        assert!(parse_url("not a url").is_err());
    }

    #[test]
    fn shapes_are_recognised() {
        assert!(looks_like(Api::Tei, b"[[0.1,0.2]]"));
        assert!(looks_like(
            Api::Tei,
            br#"{"model":"m","embeddings":[[0.1]]}"#
        ));
        assert!(!looks_like(Api::Tei, br#"{"data":[{}]}"#));
        assert!(looks_like(Api::OpenAi, br#"{"data":[{"embedding":[1]}]}"#));
        assert!(!looks_like(Api::OpenAi, b"not json"));
    }
}
