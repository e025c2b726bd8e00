//! Chat sessions: the sliding window of each conversation, kept on the server so
//! a client sends only its new messages. In Redis when the cache has a Redis
//! tier, so any instance can continue a conversation; else in this process.

use std::sync::Arc;
use std::time::Duration;

use osprey_engine::cache::TieredCache;
use osprey_engine::generate::{GenerationConfig, Message};

/// Conversations by id, forgotten after `session_ttl_secs` unused; in memory at
/// most `max_sessions` of them (the least recently used go first); each at most
/// `context_messages` messages and `max_session_bytes` of text.
pub struct Sessions {
    memory: moka::sync::Cache<String, Arc<Vec<Message>>>,
    /// The cache whose Redis tier holds the sessions, when it has one.
    redis: Option<Arc<TieredCache>>,
    ttl_secs: u64,
    keep: usize,
    max_bytes: usize,
}

impl Sessions {
    pub fn new(config: &GenerationConfig, cache: Option<Arc<TieredCache>>) -> Self {
        Self {
            memory: moka::sync::Cache::builder()
                .max_capacity(config.max_sessions as u64)
                .time_to_idle(Duration::from_secs(config.session_ttl_secs.max(1)))
                .build(),
            redis: cache.filter(|c| c.redis().is_some()),
            ttl_secs: config.session_ttl_secs.max(1),
            keep: config.context_messages,
            max_bytes: config.max_session_bytes,
        }
    }

    /// Where sessions live: `redis` or `memory`.
    pub fn store(&self) -> &'static str {
        if self.redis.is_some() {
            "redis"
        } else {
            "memory"
        }
    }

    /// Whether `id` can name a session: 1 to 128 letters, digits, `-`, `_`, `.`
    /// or `:`.
    pub fn valid_id(id: &str) -> bool {
        !id.is_empty()
            && id.len() <= 128
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    }

    fn redis_name(id: &str) -> String {
        format!("session:{id}")
    }

    /// The session's messages (none for an unknown id). A Redis that fails or
    /// holds something unreadable reads as a new session, and is logged.
    pub async fn get(&self, id: &str) -> Option<Vec<Message>> {
        let Some(redis) = self.redis.as_ref().and_then(|c| c.redis()) else {
            return self.memory.get(id).map(|m| m.as_ref().clone());
        };
        match redis.get_value(&Self::redis_name(id)).await {
            Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
                Ok(messages) => Some(messages),
                Err(e) => {
                    tracing::warn!(session = id, error = %e, "unreadable session in Redis");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(session = id, error = %e, "reading a session from Redis");
                None
            }
        }
    }

    /// Appends a turn and keeps only what the window holds.
    pub async fn append(&self, id: &str, turn: impl IntoIterator<Item = Message>) {
        let mut messages = self.get(id).await.unwrap_or_default();
        messages.extend(turn);
        let window = self.window(&messages).to_vec();
        match self.redis.as_ref().and_then(|c| c.redis()) {
            Some(redis) => {
                let bytes = serde_json::to_vec(&window).unwrap_or_default();
                if let Err(e) = redis
                    .set_value(&Self::redis_name(id), &bytes, self.ttl_secs)
                    .await
                {
                    tracing::warn!(session = id, error = %e, "saving a session to Redis");
                }
            }
            None => self.memory.insert(id.to_owned(), Arc::new(window)),
        }
    }

    /// The last `context_messages` messages of `all`, fewer if their text passes
    /// `max_session_bytes` (the newest is always kept).
    pub fn window<'a>(&self, all: &'a [Message]) -> &'a [Message] {
        let mut start = all.len().saturating_sub(self.keep);
        let mut bytes: usize = all[start..].iter().map(|m| m.content.len()).sum();
        while bytes > self.max_bytes && start + 1 < all.len() {
            bytes -= all[start].content.len();
            start += 1;
        }
        &all[start..]
    }

    /// Whether there was a session to remove.
    pub async fn remove(&self, id: &str) -> bool {
        match self.redis.as_ref().and_then(|c| c.redis()) {
            Some(redis) => redis
                .delete_value(&Self::redis_name(id))
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(session = id, error = %e, "deleting a session from Redis");
                    false
                }),
            None => self.memory.remove(id).is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(i: usize) -> Message {
        Message {
            role: if i.is_multiple_of(2) {
                "user"
            } else {
                "assistant"
            }
            .into(),
            content: format!("message {i}"),
        }
    }

    #[tokio::test]
    async fn a_session_keeps_its_window() {
        let config = GenerationConfig {
            context_messages: 3,
            ..GenerationConfig::default()
        };
        let s = Sessions::new(&config, None);
        assert_eq!(s.store(), "memory");
        s.append("a", (0..2).map(msg)).await;
        s.append("a", (2..4).map(msg)).await;
        let kept = s.get("a").await.unwrap_or_default();
        assert_eq!(kept.as_slice(), &[msg(1), msg(2), msg(3)]);
        assert!(s.remove("a").await);
        assert!(s.get("a").await.is_none());
    }

    #[test]
    fn the_byte_bound_drops_the_oldest_but_never_the_newest() {
        let config = GenerationConfig {
            max_session_bytes: 20,
            ..GenerationConfig::default()
        };
        let s = Sessions::new(&config, None);
        let all: Vec<Message> = (0..4).map(msg).collect();
        assert_eq!(s.window(&all), &all[2..]);
        let big = vec![Message {
            role: "user".into(),
            content: "x".repeat(100),
        }];
        assert_eq!(s.window(&big).len(), 1);
    }

    #[test]
    fn ids_are_plain() {
        assert!(Sessions::valid_id("chat-42:a.b_c"));
        assert!(!Sessions::valid_id(""));
        assert!(!Sessions::valid_id("a/b"));
        assert!(!Sessions::valid_id(&"x".repeat(129)));
    }
}
