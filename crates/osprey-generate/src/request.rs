//! What a generation request asks for, and what comes back while it runs.

use serde::{Deserialize, Serialize};

/// How the next token is chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// 0 picks the most likely token (greedy).
    pub temperature: f32,
    pub top_p: f32,
    /// 0 means all tokens.
    pub top_k: u32,
    /// A fixed seed makes sampling repeatable; `None` draws one.
    pub seed: Option<u32>,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            seed: None,
        }
    }
}

impl Sampling {
    /// Whether the same prompt always gives the same answer.
    pub fn is_deterministic(&self) -> bool {
        self.temperature == 0.0 || self.seed.is_some()
    }

    /// Refuses values no sampler takes.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.temperature.is_finite() && (0.0..=2.0).contains(&self.temperature)) {
            return Err(format!(
                "temperature must be between 0 and 2, not {}",
                self.temperature
            ));
        }
        if !(self.top_p.is_finite() && self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!(
                "top_p must be greater than 0 and at most 1, not {}",
                self.top_p
            ));
        }
        Ok(())
    }
}

/// One generation: a tokenized prompt and when to stop.
#[derive(Debug, Clone)]
pub struct Job {
    pub prompt: Vec<i32>,
    pub max_tokens: u32,
    pub sampling: Sampling,
    pub stop: Vec<String>,
    /// Keep going past the end-of-generation token.
    pub ignore_eos: bool,
}

/// Why an answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Finish {
    /// The model ended it, or a stop sequence did.
    Stop,
    /// `max_tokens` was reached.
    Length,
}

impl Finish {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
        }
    }
}

/// What a running generation sends back.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The first token is known (time to first token ends here).
    Started,
    /// Text to append, and the token it came from.
    Token { text: String, id: i32 },
    /// The answer is complete.
    Done {
        finish: Finish,
        prompt_tokens: u32,
        /// Prompt tokens found in cells an earlier sequence left, not read again.
        cached_tokens: u32,
        completion_tokens: u32,
    },
    /// The engine failed this sequence.
    Failed(String),
}
