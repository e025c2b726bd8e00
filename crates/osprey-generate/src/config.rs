//! `[generation]`: how the generation engine runs and what it holds.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerationConfig {
    /// A GGUF file served as a generation model beside `[model]` (named after
    /// the file). `[[models]]` entries with `task = "generate"` are the other way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<std::path::PathBuf>,
    /// Sequences decoded together in each step (llama.cpp's slots).
    pub max_sequences: u32,
    /// KV cache cells shared by all sequences. A request holds prompt plus
    /// `max_tokens` of them while it runs; one that does not fit gets 429.
    pub kv_budget_tokens: u32,
    /// Longest prompt plus answer of one sequence (also cut to the model's own).
    pub context_tokens: u32,
    /// Tokens per decode step: every running sequence's next token, then as much
    /// waiting prompt as fits.
    pub batch_tokens: u32,
    /// `max_tokens` when a request sets none.
    pub default_max_tokens: u32,
    /// Threads for the decode loop; 0 means one per core.
    pub threads: usize,
    /// The chat template for a model whose file carries none: `plain`, or one of
    /// llama.cpp's named templates (`chatml`, `gemma`, `llama3`, ...).
    pub chat_template: String,
    /// Messages of a session sent to the model (the sliding window).
    pub context_messages: usize,
    /// A session not used for this long is forgotten.
    pub session_ttl_secs: u64,
    /// Sessions kept at most (in memory; the oldest go first).
    pub max_sessions: usize,
    /// Bytes of message text one session keeps at most.
    pub max_session_bytes: usize,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            model: None,
            max_sequences: 16,
            kv_budget_tokens: 16_384,
            context_tokens: 4096,
            batch_tokens: 512,
            default_max_tokens: 256,
            threads: 0,
            chat_template: "plain".into(),
            context_messages: 10,
            session_ttl_secs: 3600,
            max_sessions: 10_000,
            max_session_bytes: 64 * 1024,
        }
    }
}

impl GenerationConfig {
    /// Refuses settings the engine cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=256).contains(&self.max_sequences) {
            return Err("generation.max_sequences must be between 1 and 256".into());
        }
        if self.context_tokens < 16 || self.kv_budget_tokens < self.context_tokens {
            return Err(
                "generation.context_tokens must be at least 16 and at most kv_budget_tokens".into(),
            );
        }
        if self.batch_tokens < self.max_sequences {
            return Err("generation.batch_tokens must be at least max_sequences".into());
        }
        if self.default_max_tokens == 0 || self.context_messages == 0 {
            return Err(
                "generation.default_max_tokens and context_messages must be at least 1".into(),
            );
        }
        Ok(())
    }
}
