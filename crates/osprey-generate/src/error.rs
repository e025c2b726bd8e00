use thiserror::Error;

#[derive(Debug, Error)]
pub enum GenerateError {
    /// The client asked for something that cannot be served (a 400).
    #[error("{0}")]
    Invalid(String),
    /// Not enough KV budget now; worth retrying after a while (a 429).
    #[error(
        "the generation budget is in use: this request needs {needed} KV tokens, \
         {free} of {total} are free; retry shortly"
    )]
    Busy { needed: u32, free: u64, total: u64 },
    /// The engine has stopped (shutdown or a reload).
    #[error("the generation engine has stopped")]
    Stopped,
    #[error("generation config: {0}")]
    Config(String),
    #[error("{0}")]
    Load(String),
    #[error("generation engine: {0}")]
    Engine(String),
}
