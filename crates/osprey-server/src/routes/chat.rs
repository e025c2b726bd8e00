//! `POST /v1/chat/completions` and `POST /v1/completions` (OpenAI's shapes, with
//! `session_id` and `ignore_eos` as extensions), and `/v1/sessions/{id}`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use osprey_engine::cache::{CacheKey, Entry, KeySpace, TieredCache};
use osprey_engine::generate::{
    Event, Finish, GenerateError, Generator, Job, Message, Sampling, TextStream, check_role,
};
use osprey_engine::{Served, Task};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

use super::Call;
use crate::input::read_json;
use crate::sessions::Sessions;
use crate::{ApiError, AppState};

static SESSION_HEADER: HeaderName = HeaderName::from_static("x-osprey-session");

/// `content` as a string, or OpenAI's list of parts (text parts only).
#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct InMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// The fields both routes share.
#[derive(Deserialize)]
struct Common {
    model: Option<String>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<u32>,
    seed: Option<i64>,
    stop: Option<OneOrMany>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    n: Option<u32>,
    #[serde(default)]
    ignore_eos: bool,
    logprobs: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ChatRequest {
    messages: Vec<InMessage>,
    session_id: Option<String>,
    #[serde(flatten)]
    common: Common,
}

#[derive(Deserialize)]
struct CompletionRequest {
    prompt: OneOrMany,
    #[serde(flatten)]
    common: Common,
}

/// The request's sampling and limits, checked.
struct Settings {
    sampling: Sampling,
    max_tokens: Option<u32>,
    stop: Vec<String>,
    stream: bool,
    include_usage: bool,
    ignore_eos: bool,
}

fn settings(c: &mut Common) -> Result<Settings, ApiError> {
    let bad = |m: String| ApiError::Generate(GenerateError::Invalid(m));
    if c.n.is_some_and(|n| n != 1) {
        return Err(bad("n must be 1: one answer per request".into()));
    }
    if c.logprobs
        .as_ref()
        .is_some_and(|v| !matches!(v, serde_json::Value::Null | serde_json::Value::Bool(false)))
    {
        return Err(bad("logprobs are not supported".into()));
    }
    let seed = match c.seed {
        None => None,
        Some(s) => Some(
            u32::try_from(s)
                .map_err(|_| bad(format!("seed must be between 0 and {}, not {s}", u32::MAX)))?,
        ),
    };
    let sampling = Sampling {
        temperature: c.temperature.unwrap_or(1.0),
        top_p: c.top_p.unwrap_or(1.0),
        top_k: c.top_k.unwrap_or(0),
        seed,
    };
    sampling.validate().map_err(bad)?;
    let stop = c.stop.take().map(OneOrMany::into_vec).unwrap_or_default();
    if stop.len() > 4 || stop.iter().any(|s| s.is_empty() || s.len() > 256) {
        return Err(bad(
            "stop takes at most 4 sequences of 1 to 256 bytes".into()
        ));
    }
    Ok(Settings {
        sampling,
        max_tokens: c.max_completion_tokens.or(c.max_tokens),
        stop,
        stream: c.stream,
        include_usage: c.stream_options.as_ref().is_some_and(|o| o.include_usage),
        ignore_eos: c.ignore_eos,
    })
}

fn messages(input: Vec<InMessage>) -> Result<Vec<Message>, ApiError> {
    let bad = |m: String| ApiError::Generate(GenerateError::Invalid(m));
    input
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let role = check_role(&m.role)?;
            let content = match m.content {
                None => String::new(),
                Some(Content::Text(t)) => t,
                Some(Content::Parts(parts)) => {
                    let mut text = String::new();
                    for p in parts {
                        match (p.kind.as_str(), p.text) {
                            ("text", Some(t)) => text.push_str(&t),
                            (kind, _) => {
                                return Err(bad(format!(
                                    "messages[{i}]: content parts of type `{kind}` are not \
                                     supported; send text"
                                )));
                            }
                        }
                    }
                    text
                }
            };
            Ok(Message {
                role: role.to_owned(),
                content,
            })
        })
        .collect()
}

/// What a finished answer was: for the response, the session and the cache.
struct Answer {
    text: String,
    ids: Vec<i32>,
    finish: Finish,
    prompt_tokens: u32,
    cached_tokens: u32,
    completion_tokens: u32,
}

impl Answer {
    /// Nothing yet: what a live answer's events fill in.
    fn empty() -> Self {
        Self {
            text: String::new(),
            ids: Vec::new(),
            finish: Finish::Stop,
            prompt_tokens: 0,
            cached_tokens: 0,
            completion_tokens: 0,
        }
    }
}

/// The kind of response: chat or legacy completions.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Completion,
}

/// Everything a generation needs once its prompt is known.
struct Prepared {
    kind: Kind,
    generator: Arc<Generator>,
    label: String,
    model: String,
    prompt_tokens: Vec<i32>,
    settings: Settings,
    max_tokens: u32,
    cache: Option<(Arc<TieredCache>, CacheKey)>,
    session: Option<(String, Vec<Message>)>,
}

impl Prepared {
    /// The generation a request asked for, with its cache key when it has one;
    /// counts the request on the model.
    #[allow(clippy::too_many_arguments)]
    fn new(
        state: &AppState,
        served: &Served,
        kind: Kind,
        asked: Option<String>,
        generator: Arc<Generator>,
        (prompt, tokens): (String, Vec<i32>),
        max_tokens: u32,
        settings: Settings,
        session: Option<(String, Vec<Message>)>,
    ) -> Self {
        let what = match kind {
            Kind::Chat => "chat",
            Kind::Completion => "completion",
        };
        let cache = cache_key(
            state,
            &served.label,
            &generator,
            &settings,
            max_tokens,
            session.is_none(),
            what,
            &prompt,
        );
        served.answered(1);
        Self {
            kind,
            label: served.label.clone(),
            model: asked.unwrap_or_else(|| served.name.clone()),
            generator,
            prompt_tokens: tokens,
            max_tokens,
            settings,
            cache,
            session,
        }
    }
}

pub async fn chat(
    State(state): State<AppState>,
    call: Call,
    body: Body,
) -> Result<Response, ApiError> {
    let mut req: ChatRequest = read_json(&state, &call.headers, body).await?;
    let settings = settings(&mut req.common)?;
    let new = messages(req.messages)?;
    if new.is_empty() {
        return Err(GenerateError::Invalid("messages must not be empty".into()).into());
    }
    let session_id = req.session_id.or_else(|| {
        call.headers
            .get(&SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    if let Some(id) = &session_id
        && !Sessions::valid_id(id)
    {
        return Err(GenerateError::Invalid(
            "session_id must be 1 to 128 letters, digits, `-`, `_`, `.` or `:`".into(),
        )
        .into());
    }
    let (served, generator, max_tokens) =
        generation_model(&state, &call, req.common.model.as_deref(), &settings)?;
    let sessions = state.models.sessions();
    let mut all: Vec<Message> = match &session_id {
        Some(id) => sessions.get(id).await.unwrap_or_default(),
        None => Vec::new(),
    };
    all.extend(new.iter().cloned());
    // A session's history is the server's to trim; a client's own conversation
    // goes to the model whole, as it was sent (too long for the context: 400).
    let mut window = match &session_id {
        Some(_) => sessions.window(&all).to_vec(),
        None => all,
    };
    // Cut a session's oldest messages until prompt and answer fit the context.
    let (prompt, template_stops, tokens) = loop {
        let g = generator.clone();
        let w = window.clone();
        let (prompt, stops, tokens) = tokio::task::spawn_blocking(move || {
            let (prompt, stops) = g.chat_prompt(&w)?;
            let tokens = g.tokenize(&prompt);
            Ok::<_, GenerateError>((prompt, stops, tokens))
        })
        .await
        .map_err(|_| GenerateError::Stopped)??;
        let fits = tokens.len() as u64 + u64::from(max_tokens)
            <= u64::from(generator.info().context_tokens);
        if fits || window.len() <= 1 || session_id.is_none() {
            break (prompt, stops, tokens);
        }
        window.remove(0);
    };
    let mut settings = settings;
    settings
        .stop
        .extend(template_stops.iter().map(|s| (*s).to_owned()));
    let prepared = Prepared::new(
        &state,
        &served,
        Kind::Chat,
        req.common.model,
        generator,
        (prompt, tokens),
        max_tokens,
        settings,
        session_id.map(|id| (id, new)),
    );
    respond(&state, prepared).await
}

pub async fn completions(
    State(state): State<AppState>,
    call: Call,
    body: Body,
) -> Result<Response, ApiError> {
    let mut req: CompletionRequest = read_json(&state, &call.headers, body).await?;
    let settings = settings(&mut req.common)?;
    let mut prompts = req.prompt.into_vec();
    if prompts.len() != 1 {
        return Err(GenerateError::Invalid("prompt must be one string".into()).into());
    }
    let prompt = prompts.pop().unwrap_or_default();
    if prompt.is_empty() {
        return Err(GenerateError::Invalid("prompt must not be empty".into()).into());
    }
    let (served, generator, max_tokens) =
        generation_model(&state, &call, req.common.model.as_deref(), &settings)?;
    let g = generator.clone();
    let p = prompt.clone();
    let tokens = tokio::task::spawn_blocking(move || g.tokenize(&p))
        .await
        .map_err(|_| GenerateError::Stopped)?;
    let prepared = Prepared::new(
        &state,
        &served,
        Kind::Completion,
        req.common.model,
        generator,
        (prompt, tokens),
        max_tokens,
        settings,
        None,
    );
    respond(&state, prepared).await
}

/// The generation model a request named (or the first served), its engine, and
/// the answer's token limit (the request's, else the model's default).
fn generation_model(
    state: &AppState,
    call: &Call,
    asked: Option<&str>,
    settings: &Settings,
) -> Result<(Arc<Served>, Arc<Generator>, u32), ApiError> {
    let served = super::model(state, call, asked, Task::Generate, 1)?;
    let generator = served.generator()?.clone();
    let max_tokens = settings
        .max_tokens
        .unwrap_or(generator.info().default_max_tokens);
    Ok((served, generator, max_tokens))
}

/// The cache key of a deterministic request without a session, when a cache is on.
#[allow(clippy::too_many_arguments)]
fn cache_key(
    state: &AppState,
    label: &str,
    generator: &Generator,
    s: &Settings,
    max_tokens: u32,
    sessionless: bool,
    kind: &str,
    prompt: &str,
) -> Option<(Arc<TieredCache>, CacheKey)> {
    if !sessionless || !s.sampling.is_deterministic() {
        return None;
    }
    let cache = state.models.cache()?.clone();
    let p = &s.sampling;
    let key = KeySpace::new(label, &generator.info().revision)
        .option("generate", kind)
        .option("temperature", p.temperature)
        .option("top_p", p.top_p)
        .option("top_k", p.top_k)
        .option("seed", p.seed.map_or(-1, i64::from))
        .option("max_tokens", max_tokens)
        .option("ignore_eos", s.ignore_eos)
        .option("stop", serde_json::to_string(&s.stop).unwrap_or_default())
        .key(prompt);
    Some((cache, key))
}

/// A cached answer is kept in the result cache's float entries as
/// `[finish, prompt tokens, token ids…]`: ids below 2^24 are exact in an f32,
/// and replaying the ids through the same stop sequences gives the same text.
fn to_entry(a: &Answer) -> Option<Entry> {
    const EXACT: i32 = 1 << 24;
    if a.ids.iter().any(|&id| !(0..EXACT).contains(&id)) {
        return None;
    }
    let finish = match a.finish {
        Finish::Stop => 0.0,
        Finish::Length => 1.0,
    };
    let mut v = Vec::with_capacity(a.ids.len() + 2);
    v.push(finish);
    v.push(a.prompt_tokens as f32);
    v.extend(a.ids.iter().map(|&id| id as f32));
    Some(Entry::new(v, a.completion_tokens))
}

fn from_entry(e: &Entry, generator: &Generator, stops: &[String]) -> Option<Answer> {
    let v = &e.vector;
    if v.len() < 2 || v.iter().any(|x| x.fract() != 0.0 || *x < 0.0) {
        return None;
    }
    let finish = if v[0] == 0.0 {
        Finish::Stop
    } else {
        Finish::Length
    };
    let ids: Vec<i32> = v[2..].iter().map(|&x| x as i32).collect();
    let mut stream = TextStream::new(stops.to_vec());
    let mut text = String::new();
    for &id in &ids {
        let step = stream.push(&generator.token_bytes(id));
        text.push_str(&step.text);
        if step.stopped {
            break;
        }
    }
    text.push_str(&stream.finish());
    Some(Answer {
        text,
        finish,
        prompt_tokens: v[1] as u32,
        // Answered from the result cache: no prompt was read at all.
        cached_tokens: 0,
        completion_tokens: e.tokens,
        ids,
    })
}

/// Serves from the cache, or runs the job and answers whole or as a stream.
async fn respond(state: &AppState, p: Prepared) -> Result<Response, ApiError> {
    let id = format!(
        "{}-{}",
        if p.kind == Kind::Chat {
            "chatcmpl"
        } else {
            "cmpl"
        },
        uuid::Uuid::new_v4().simple()
    );
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let head = Head {
        id,
        created,
        model: p.model.clone(),
        kind: p.kind,
    };
    if let Some((cache, key)) = &p.cache {
        let found = cache.get_many(std::slice::from_ref(key)).await;
        if let Some(Some(hit)) = found.into_iter().next()
            && let Some(answer) = from_entry(&hit.entry, &p.generator, &p.settings.stop)
        {
            let header = state.expose_cache_status.then(|| hit.tier.hit_header());
            let mut resp = if p.settings.stream {
                let events = replay(&answer);
                stream_response(head, p.settings.include_usage, events, None)
            } else {
                Json(head.whole(&answer)).into_response()
            };
            finish_headers(&mut resp, &p.label, header, None);
            return Ok(resp);
        }
    }
    let started = Instant::now();
    let job = Job {
        prompt: p.prompt_tokens.clone(),
        max_tokens: p.max_tokens,
        sampling: p.settings.sampling.clone(),
        stop: p.settings.stop.clone(),
        ignore_eos: p.settings.ignore_eos,
    };
    let mut events = p.generator.submit(job)?;
    // Wait for the first token before answering, so Server-Timing carries the
    // time to first token and a failure is still an HTTP error.
    let first = match events.recv().await {
        Some(Event::Failed(e)) => return Err(GenerateError::Engine(e).into()),
        Some(e) => e,
        None => return Err(GenerateError::Stopped.into()),
    };
    let ttft = started.elapsed();
    let cache_header = p
        .cache
        .as_ref()
        .filter(|_| state.expose_cache_status)
        .map(|_| "miss");
    let after = AfterAnswer {
        cache: p.cache.clone(),
        session: p.session.clone(),
        sessions: state.models.clone(),
    };
    let mut resp = if p.settings.stream {
        let events = futures::stream::once(async move { first })
            .chain(tokio_stream_of(events))
            .boxed();
        stream_response(head, p.settings.include_usage, events, Some(after))
    } else {
        let answer = collect(first, &mut events).await?;
        after.done(&answer).await;
        Json(head.whole(&answer)).into_response()
    };
    finish_headers(&mut resp, &p.label, cache_header, Some(ttft));
    Ok(resp)
}

/// What happens once an answer is complete: it joins its session and the cache.
struct AfterAnswer {
    cache: Option<(Arc<TieredCache>, CacheKey)>,
    session: Option<(String, Vec<Message>)>,
    sessions: Arc<crate::Models>,
}

impl AfterAnswer {
    async fn done(&self, a: &Answer) {
        if let Some((cache, key)) = &self.cache
            && let Some(entry) = to_entry(a)
        {
            cache.put_many(&[(*key, entry)]);
        }
        if let Some((id, new)) = &self.session {
            let reply = Message {
                role: "assistant".into(),
                content: a.text.clone(),
            };
            self.sessions
                .sessions()
                .append(id, new.iter().cloned().chain(std::iter::once(reply)))
                .await;
        }
    }
}

fn tokio_stream_of(
    mut rx: UnboundedReceiver<Event>,
) -> impl futures::Stream<Item = Event> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Reads events until the answer ends.
async fn collect(first: Event, events: &mut UnboundedReceiver<Event>) -> Result<Answer, ApiError> {
    let mut answer = Answer::empty();
    let mut next = Some(first);
    loop {
        match next {
            Some(Event::Started) => {}
            Some(Event::Token { text, id }) => {
                answer.text.push_str(&text);
                if id >= 0 {
                    answer.ids.push(id);
                }
            }
            Some(Event::Done {
                finish,
                prompt_tokens,
                cached_tokens,
                completion_tokens,
            }) => {
                answer.finish = finish;
                answer.prompt_tokens = prompt_tokens;
                answer.cached_tokens = cached_tokens;
                answer.completion_tokens = completion_tokens;
                return Ok(answer);
            }
            Some(Event::Failed(e)) => return Err(GenerateError::Engine(e).into()),
            None => return Err(GenerateError::Stopped.into()),
        }
        next = events.recv().await;
    }
}

/// A cached answer as the events a live one would send.
fn replay(a: &Answer) -> futures::stream::BoxStream<'static, Event> {
    let events = vec![
        Event::Started,
        Event::Token {
            text: a.text.clone(),
            id: -1,
        },
        Event::Done {
            finish: a.finish,
            prompt_tokens: a.prompt_tokens,
            cached_tokens: a.cached_tokens,
            completion_tokens: a.completion_tokens,
        },
    ];
    futures::stream::iter(events).boxed()
}

/// The fields every response and chunk carries.
struct Head {
    id: String,
    created: u64,
    model: String,
    kind: Kind,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
    prompt_tokens_details: PromptDetails,
}

/// OpenAI's breakdown of the prompt: the tokens its cache spared reading.
#[derive(Serialize)]
struct PromptDetails {
    cached_tokens: u32,
}

fn usage(a: &Answer) -> Usage {
    Usage {
        prompt_tokens: a.prompt_tokens,
        completion_tokens: a.completion_tokens,
        total_tokens: a.prompt_tokens + a.completion_tokens,
        prompt_tokens_details: PromptDetails {
            cached_tokens: a.cached_tokens,
        },
    }
}

impl Head {
    fn whole(&self, a: &Answer) -> serde_json::Value {
        let choice = match self.kind {
            Kind::Chat => json!({
                "index": 0,
                "message": {"role": "assistant", "content": a.text},
                "logprobs": null,
                "finish_reason": a.finish.as_str(),
            }),
            Kind::Completion => json!({
                "index": 0,
                "text": a.text,
                "logprobs": null,
                "finish_reason": a.finish.as_str(),
            }),
        };
        json!({
            "id": self.id,
            "object": self.object(false),
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": usage(a),
        })
    }

    fn object(&self, chunk: bool) -> &'static str {
        match (self.kind, chunk) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Completion, _) => "text_completion",
        }
    }

    /// One SSE chunk: a text delta, or the last one with its finish reason.
    fn chunk(&self, text: Option<&str>, first: bool, finish: Option<Finish>) -> Bytes {
        let finish = finish.map(Finish::as_str);
        let choice = match self.kind {
            Kind::Chat => {
                let mut delta = serde_json::Map::new();
                if first {
                    delta.insert("role".into(), json!("assistant"));
                }
                if let Some(t) = text {
                    delta.insert("content".into(), json!(t));
                }
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
            }
            Kind::Completion => json!({
                "index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish,
            }),
        };
        self.event(json!({
            "id": self.id,
            "object": self.object(true),
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        }))
    }

    /// The usage chunk `stream_options.include_usage` asks for.
    fn usage_chunk(&self, a: &Answer) -> Bytes {
        self.event(json!({
            "id": self.id,
            "object": self.object(true),
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage(a),
        }))
    }

    fn event(&self, value: serde_json::Value) -> Bytes {
        let mut out = b"data: ".to_vec();
        // A JSON value always serializes.
        let _ = serde_json::to_writer(&mut out, &value);
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }
}

/// Server-sent events: a chunk per token, the finish, usage if asked, `[DONE]`.
fn stream_response(
    head: Head,
    include_usage: bool,
    events: futures::stream::BoxStream<'static, Event>,
    after: Option<AfterAnswer>,
) -> Response {
    struct St {
        head: Head,
        events: futures::stream::BoxStream<'static, Event>,
        first: bool,
        answer: Answer,
        after: Option<AfterAnswer>,
        include_usage: bool,
        done: bool,
    }
    let st = St {
        head,
        events,
        first: true,
        answer: Answer::empty(),
        after,
        include_usage,
        done: false,
    };
    let body = futures::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            match st.events.next().await {
                Some(Event::Started) => {
                    if st.head.kind == Kind::Chat && st.first {
                        st.first = false;
                        return Some((Ok::<_, Infallible>(st.head.chunk(None, true, None)), st));
                    }
                }
                Some(Event::Token { text, id }) => {
                    if id >= 0 {
                        st.answer.ids.push(id);
                    }
                    if text.is_empty() {
                        continue;
                    }
                    st.answer.text.push_str(&text);
                    let first = std::mem::replace(&mut st.first, false);
                    let chunk = st.head.chunk(Some(&text), first, None);
                    return Some((Ok(chunk), st));
                }
                Some(Event::Done {
                    finish,
                    prompt_tokens,
                    cached_tokens,
                    completion_tokens,
                }) => {
                    st.answer.finish = finish;
                    st.answer.prompt_tokens = prompt_tokens;
                    st.answer.cached_tokens = cached_tokens;
                    st.answer.completion_tokens = completion_tokens;
                    if let Some(after) = st.after.take() {
                        after.done(&st.answer).await;
                    }
                    let mut out = st.head.chunk(None, false, Some(finish)).to_vec();
                    if st.include_usage {
                        out.extend_from_slice(&st.head.usage_chunk(&st.answer));
                    }
                    out.extend_from_slice(b"data: [DONE]\n\n");
                    st.done = true;
                    return Some((Ok(Bytes::from(out)), st));
                }
                Some(Event::Failed(e)) => {
                    // Headers are gone: the error goes in the stream, as OpenAI does.
                    let chunk = st.head.event(json!({
                        "error": {"message": e, "type": "internal_error", "code": null}
                    }));
                    st.done = true;
                    return Some((Ok(chunk), st));
                }
                None => return None,
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

static X_CACHE: HeaderName = HeaderName::from_static("x-cache");
static X_MODEL: HeaderName = HeaderName::from_static("x-osprey-model");
static SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

fn finish_headers(resp: &mut Response, label: &str, cache: Option<&str>, ttft: Option<Duration>) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(label) {
        h.insert(&X_MODEL, v);
    }
    if let Some(c) = cache.and_then(|c| HeaderValue::from_str(c).ok()) {
        h.insert(&X_CACHE, c);
    }
    if let Some(t) = ttft
        && let Ok(v) = HeaderValue::from_str(&format!("ttft;dur={:.3}", t.as_secs_f64() * 1e3))
    {
        h.insert(&SERVER_TIMING, v);
    }
}

#[derive(Serialize)]
struct SessionBody {
    id: String,
    messages: Vec<Message>,
}

/// `GET /v1/sessions/{id}`: the messages the window keeps.
pub async fn get_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match state.models.sessions().get(&id).await {
        Some(messages) => Ok(Json(SessionBody { id, messages }).into_response()),
        None => Err(ApiError::NotFound(format!("session `{id}`"))),
    }
}

/// `DELETE /v1/sessions/{id}`.
pub async fn delete_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if state.models.sessions().remove(&id).await {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound(format!("session `{id}`")))
    }
}
