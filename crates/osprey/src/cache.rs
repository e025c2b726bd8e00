//! `osprey cache stats|clear`: the disk and Redis tiers named by the configuration,
//! opened directly, or a running server's cache through `/admin/cache`.

use anyhow::{Context, bail};
use osprey_engine::cache::{CacheConfig, DiskTier, RedisTier};
use serde_json::{Value, json};

use crate::cli::{CacheArgs, ModelArgs};
use crate::config::Config;

pub fn stats(args: &CacheArgs) -> anyhow::Result<std::process::ExitCode> {
    let out = runtime()?.block_on(async {
        match &args.url {
            Some(url) => remote(args, url, reqwest::Method::GET).await,
            None => local_stats(&load(args)?).await,
        }
    })?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(std::process::ExitCode::SUCCESS)
}

pub fn clear(args: &CacheArgs) -> anyhow::Result<std::process::ExitCode> {
    let out = runtime()?.block_on(async {
        match &args.url {
            Some(url) => remote(args, url, reqwest::Method::DELETE).await,
            None => local_clear(&load(args)?).await,
        }
    })?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(std::process::ExitCode::SUCCESS)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

fn load(args: &CacheArgs) -> anyhow::Result<CacheConfig> {
    Ok(Config::load(&args.config, &ModelArgs::default(), Vec::new())?.cache)
}

async fn remote(args: &CacheArgs, url: &str, method: reqwest::Method) -> anyhow::Result<Value> {
    let url = format!("{}/admin/cache", url.trim_end_matches('/'));
    let mut req = reqwest::Client::new().request(method, &url);
    if let Some(key) = &args.api_key {
        req = req.bearer_auth(key);
    }
    let resp = req.send().await.with_context(|| format!("calling {url}"))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .with_context(|| format!("reading the answer of {url}"))?;
    if !status.is_success() {
        bail!("{url} answered {status}: {body}");
    }
    Ok(body)
}

fn open_disk(config: &CacheConfig) -> anyhow::Result<Option<DiskTier>> {
    let Some(path) = &config.disk.path else {
        return Ok(None);
    };
    let disk = DiskTier::open(&config.disk, path).with_context(|| {
        format!(
            "opening the disk cache {} (while a server holds it, use --url)",
            path.display()
        )
    })?;
    Ok(Some(disk))
}

fn open_redis(config: &CacheConfig) -> anyhow::Result<Option<RedisTier>> {
    match &config.redis.url {
        Some(url) => Ok(Some(
            RedisTier::connect(&config.redis, url).context("connecting to redis")?,
        )),
        None => Ok(None),
    }
}

async fn local_stats(config: &CacheConfig) -> anyhow::Result<Value> {
    let mut tiers = serde_json::Map::new();
    if let Some(disk) = open_disk(config)? {
        let s = disk.snapshot();
        tiers.insert(
            "disk".into(),
            json!({"path": disk.path(), "entries": s.entries, "bytes": s.bytes, "capacity_bytes": s.capacity_bytes}),
        );
        disk.close();
    }
    if let Some(redis) = open_redis(config)? {
        let n = redis.count().await.context("counting redis keys")?;
        tiers.insert(
            "redis".into(),
            json!({"key_prefix": config.redis.key_prefix, "entries": n}),
        );
    }
    Ok(json!({
        "tiers": tiers,
        "note": "the memory tier lives in a server process: use --url to include it",
    }))
}

async fn local_clear(config: &CacheConfig) -> anyhow::Result<Value> {
    let mut cleared = serde_json::Map::new();
    if let Some(disk) = open_disk(config)? {
        let before = disk.snapshot().entries;
        disk.clear().await.context("clearing the disk cache")?;
        disk.close();
        cleared.insert("disk".into(), json!({"entries_removed": before}));
    }
    if let Some(redis) = open_redis(config)? {
        let n = redis.clear().await.context("clearing redis")?;
        cleared.insert("redis".into(), json!({"keys_removed": n}));
    }
    Ok(json!({ "cleared": cleared }))
}
