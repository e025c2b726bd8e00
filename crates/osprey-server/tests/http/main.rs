//! The HTTP API end to end: the real server in-process on an ephemeral port, the real
//! model, and reference vectors from an independent float64 implementation.
//!
//! One server is shared by the whole binary (see `common`). Tests that read global
//! counters or deliberately fill the queue take the traffic lock exclusively; all
//! others share it, so they run concurrently with each other but not with those.

#![allow(clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod batching;
mod embed;
mod errors;
mod headers;
mod info_health;
mod openai;
mod overload;
mod query;

use std::time::Duration;

use common::*;
use futures::future::join_all;
use serde_json::{Value, json};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

static TRAFFIC: RwLock<()> = RwLock::const_new(());

async fn shared() -> (RwLockReadGuard<'static, ()>, &'static TestServer) {
    let guard = TRAFFIC.read().await;
    (guard, main_server())
}

async fn exclusive() -> (RwLockWriteGuard<'static, ()>, &'static TestServer) {
    let guard = TRAFFIC.write().await;
    (guard, main_server())
}

fn long_case() -> &'static Case {
    reference()
        .cases
        .iter()
        .max_by_key(|c| c.untruncated_token_count)
        .expect("reference cases")
}

fn assert_matches_reference(v: &[f32], case: &Case, what: &str) {
    assert_eq!(v.len(), DIMS, "{what}");
    assert_unit(v, what);
    let c = cosine(v, &case.embedding);
    assert!(c >= 0.9999, "{what} {:?}: cosine {c}", case.text);
}
