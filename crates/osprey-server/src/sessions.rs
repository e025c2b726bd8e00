//! Chat sessions: the sliding window of each conversation, kept on the server so
//! a client sends only its new messages.

use std::sync::Arc;
use std::time::Duration;

use osprey_engine::generate::{GenerationConfig, Message};

/// Conversations by id, forgotten after `session_ttl_secs` unused; at most
/// `max_sessions` of them (the least recently used go first), each at most
/// `context_messages` messages and `max_session_bytes` of text.
pub struct Sessions {
    store: moka::sync::Cache<String, Arc<Vec<Message>>>,
    keep: usize,
    max_bytes: usize,
}

impl Sessions {
    pub fn new(config: &GenerationConfig) -> Self {
        Self {
            store: moka::sync::Cache::builder()
                .max_capacity(config.max_sessions as u64)
                .time_to_idle(Duration::from_secs(config.session_ttl_secs.max(1)))
                .build(),
            keep: config.context_messages,
            max_bytes: config.max_session_bytes,
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

    /// The session's messages (none for an unknown id).
    pub fn get(&self, id: &str) -> Option<Arc<Vec<Message>>> {
        self.store.get(id)
    }

    /// Appends a turn and keeps only what the window holds.
    pub fn append(&self, id: &str, turn: impl IntoIterator<Item = Message>) {
        let mut messages: Vec<Message> = self
            .store
            .get(id)
            .map(|m| m.as_ref().clone())
            .unwrap_or_default();
        messages.extend(turn);
        let window = self.window(&messages).to_vec();
        self.store.insert(id.to_owned(), Arc::new(window));
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

    pub fn remove(&self, id: &str) -> bool {
        self.store.remove(id).is_some()
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

    #[test]
    fn a_session_keeps_its_window() {
        let config = GenerationConfig {
            context_messages: 3,
            ..GenerationConfig::default()
        };
        let s = Sessions::new(&config);
        s.append("a", (0..2).map(msg));
        s.append("a", (2..4).map(msg));
        let kept = s.get("a").unwrap_or_default();
        assert_eq!(kept.as_slice(), &[msg(1), msg(2), msg(3)]);
        assert!(s.remove("a"));
        assert!(s.get("a").is_none());
    }

    #[test]
    fn the_byte_bound_drops_the_oldest_but_never_the_newest() {
        let config = GenerationConfig {
            max_session_bytes: 20,
            ..GenerationConfig::default()
        };
        let s = Sessions::new(&config);
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
