#![allow(clippy::expect_used)]
//! Two instances sharing a Redis Cluster through HTTP: what one computed, the other
//! answers from the shared tier (`x-cache: hit-l3`) without running the model.

mod common;

use common::{embed_reply as embed, start_with_cache};
use osprey_cache::testkit::{PrivateCluster, cluster_config, unique_prefix};
use osprey_engine::BatchingConfig;
use osprey_engine::cache::{CacheConfig, MemoryConfig};
use osprey_server::ServerConfig;
use serde_json::json;

#[tokio::test]
async fn a_second_instance_answers_from_the_cluster() {
    let cluster = PrivateCluster::start(3);
    let prefix = unique_prefix("cluster-shared");
    let config = || {
        Some(CacheConfig {
            // No memory tier: every repeat must come from the cluster.
            memory: MemoryConfig {
                max_bytes: 0,
                ..MemoryConfig::default()
            },
            redis: cluster_config(&cluster, &prefix),
            ..CacheConfig::default()
        })
    };
    let a = start_with_cache(ServerConfig::default(), BatchingConfig::default(), config());
    let b = start_with_cache(ServerConfig::default(), BatchingConfig::default(), config());
    // Texts enough to land on every master.
    let texts: Vec<String> = (0..12).map(|i| format!("shared text number {i}")).collect();
    let first = embed(&a.base, json!(texts)).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.header("x-cache"), Some("miss"));
    a.pipeline.cache().expect("cache").flush().await;

    let before = b.engine.batch_counts().1;
    let second = embed(&b.base, json!(texts)).await;
    assert_eq!(second.header("x-cache"), Some("hit-l3"), "{}", second.text);
    assert_eq!(second.vectors(), first.vectors());
    assert_eq!(
        b.engine.batch_counts().1,
        before,
        "instance b never ran the model"
    );

    let cleared = b
        .pipeline
        .cache()
        .expect("cache")
        .clear()
        .await
        .expect("clear");
    assert_eq!(cleared.redis_keys, Some(12));
}
