//! A real server observed as a test asks (its own SLO and alert settings), on its
//! own thread and runtime, with the real model.

#![allow(dead_code)]

use std::sync::Arc;

use osprey_engine::cache::{CacheConfig, TieredCache};
use osprey_engine::{BackendKind, BatchingConfig, Engine, EngineConfig, Pipeline};
use osprey_server::{AppState, ObserveConfig, ServerConfig};

pub struct Observed {
    pub base: String,
    pub engine: Arc<Engine>,
}

pub fn start(observe: ObserveConfig, cache: Option<CacheConfig>) -> Observed {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("osprey-observed-server".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind an ephemeral port");
                let addr = listener.local_addr().expect("local address");
                let cache = match cache {
                    Some(c) => Some(Arc::new(
                        TieredCache::open(&c).await.expect("open the cache"),
                    )),
                    None => None,
                };
                let state =
                    AppState::new(ServerConfig::default(), osprey_server::install_metrics())
                        .with_observe(observe);
                tokio::spawn(osprey_server::serve(
                    listener,
                    state.clone(),
                    std::future::pending(),
                ));
                let config = EngineConfig {
                    model_path: crate::common::model_dir(),
                    backend: BackendKind::Candle,
                    onnxruntime_lib: None,
                    batching: BatchingConfig::default(),
                };
                let engine = tokio::task::spawn_blocking(move || Engine::start(&config))
                    .await
                    .expect("engine start task")
                    .expect("the model loads (run `make model`)");
                let engine = Arc::new(engine);
                state
                    .engine
                    .set(Arc::new(Pipeline::new(engine.clone(), cache)));
                tx.send((addr, engine)).expect("report the server");
                std::future::pending::<()>().await;
            });
        })
        .expect("spawn the server thread");
    let (addr, engine) = rx.recv().expect("the server thread failed to start");
    Observed {
        base: format!("http://{addr}"),
        engine,
    }
}
