//! Chat messages to one prompt: the template in the model's file when it has
//! one, else the one named in config (`plain`, or a llama.cpp template name).

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use serde::{Deserialize, Serialize};

use crate::GenerateError;

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// The roles a chat may hold; OpenAI's `developer` is a system message.
pub fn check_role(role: &str) -> Result<&'static str, GenerateError> {
    match role {
        "system" | "developer" => Ok("system"),
        "user" => Ok("user"),
        "assistant" => Ok("assistant"),
        other => Err(GenerateError::Invalid(format!(
            "unknown message role `{other}` (system, developer, user or assistant)"
        ))),
    }
}

/// How messages become a prompt.
#[derive(Clone)]
pub enum ChatTemplate {
    /// `System: …`, `User: …` and `Assistant: …` lines, ending with
    /// `Assistant:`. A base model would go on to write the user's next turn, so
    /// the answer stops at a new `User:` line.
    Plain,
    /// A template llama.cpp knows, from the file or by name.
    Llama {
        template: LlamaChatTemplate,
        name: String,
    },
}

pub const PLAIN_STOPS: [&str; 2] = ["\nUser:", "\nSystem:"];

impl ChatTemplate {
    /// The file's template when llama.cpp can apply it, else the configured one.
    pub fn for_model(model: &LlamaModel, configured: &str) -> Result<Self, GenerateError> {
        if let Ok(template) = model.chat_template(None) {
            let probe = [LlamaChatMessage::new("user".into(), "hi".into())];
            if let Ok(probe) = probe.into_iter().collect::<Result<Vec<_>, _>>()
                && model.apply_chat_template(&template, &probe, true).is_ok()
            {
                return Ok(Self::Llama {
                    template,
                    name: "from the model file".into(),
                });
            }
            tracing::warn!(
                "the model's chat template is not one llama.cpp can apply; using `{configured}`"
            );
        }
        Self::named(model, configured)
    }

    fn named(model: &LlamaModel, name: &str) -> Result<Self, GenerateError> {
        if name == "plain" {
            return Ok(Self::Plain);
        }
        let bad = || {
            GenerateError::Config(format!(
                "generation.chat_template `{name}` is not `plain` nor a template llama.cpp knows \
                 (chatml, gemma, llama3, mistral-v7, phi3, ...)"
            ))
        };
        let template = LlamaChatTemplate::new(name).map_err(|_| bad())?;
        let probe = LlamaChatMessage::new("user".into(), "hi".into()).map_err(|_| bad())?;
        model
            .apply_chat_template(&template, &[probe], true)
            .map_err(|_| bad())?;
        Ok(Self::Llama {
            template,
            name: name.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Plain => "plain",
            Self::Llama { name, .. } => name,
        }
    }

    /// Stop sequences the template adds to every chat answer.
    pub fn stops(&self) -> &'static [&'static str] {
        match self {
            Self::Plain => &PLAIN_STOPS,
            Self::Llama { .. } => &[],
        }
    }

    /// The prompt for `messages`, ending where the assistant's answer begins.
    pub fn apply(&self, model: &LlamaModel, messages: &[Message]) -> Result<String, GenerateError> {
        match self {
            Self::Plain => Ok(plain(messages)),
            Self::Llama { template, .. } => {
                let chat = messages
                    .iter()
                    .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| {
                        GenerateError::Invalid("a message holds a NUL character".into())
                    })?;
                model
                    .apply_chat_template(template, &chat, true)
                    .map_err(|e| GenerateError::Engine(format!("chat template: {e}")))
            }
        }
    }
}

fn plain(messages: &[Message]) -> String {
    let mut out = String::new();
    for m in messages {
        let who = match m.role.as_str() {
            "system" | "developer" => "System",
            "assistant" => "Assistant",
            _ => "User",
        };
        out.push_str(who);
        out.push_str(": ");
        out.push_str(m.content.trim());
        out.push('\n');
    }
    out.push_str("Assistant:");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_template_ends_where_the_answer_begins() {
        let m = |role: &str, content: &str| Message {
            role: role.into(),
            content: content.into(),
        };
        let p = plain(&[
            m("system", "Be brief."),
            m("user", "Hi "),
            m("assistant", "Hello."),
            m("user", "Why?"),
        ]);
        assert_eq!(
            p,
            "System: Be brief.\nUser: Hi\nAssistant: Hello.\nUser: Why?\nAssistant:"
        );
    }

    #[test]
    fn unknown_roles_are_refused() {
        assert_eq!(check_role("developer").ok(), Some("system"));
        assert!(check_role("tool").is_err());
    }
}
