//! Scrapes render off the async workers, and overlapping ones share a rendering.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

/// A rendering that blocks its thread, as reading /proc or cache maintenance can.
fn slow(calls: Arc<AtomicUsize>) -> impl FnOnce() -> String + Send + 'static {
    move || {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        format!("rendering {n}")
    }
}

/// On a single-threaded runtime, a rendering that ran on the async thread would
/// stop every other task until it returned.
#[tokio::test(flavor = "current_thread")]
async fn a_scrape_does_not_block_the_runtime() {
    let gate = Arc::new(ScrapeGate::default());
    let calls = Arc::new(AtomicUsize::new(0));
    let ticks = Arc::new(AtomicUsize::new(0));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let text = gate
        .clone()
        .scrape(slow(calls.clone()))
        .await
        .expect("rendered");
    ticker.abort();
    assert_eq!(&text[..], b"rendering 0");
    let t = ticks.load(Ordering::SeqCst);
    assert!(t >= 10, "other tasks ran {t} times during a 300 ms scrape");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_scrapes_share_renderings() {
    let gate = Arc::new(ScrapeGate::default());
    let calls = Arc::new(AtomicUsize::new(0));
    let scrapes: Vec<_> = (0..20)
        .map(|_| {
            let (gate, calls) = (gate.clone(), calls.clone());
            tokio::spawn(async move { gate.scrape(slow(calls)).await })
        })
        .collect();
    for s in scrapes {
        s.await.expect("task").expect("rendered");
    }
    let n = calls.load(Ordering::SeqCst);
    assert!(n <= 2, "20 overlapping scrapes rendered {n} times");
    // A scrape after the last one ended gets fresh figures.
    let text = gate
        .clone()
        .scrape(slow(calls.clone()))
        .await
        .expect("rendered");
    assert_eq!(text, format!("rendering {n}").as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapers_hanging_up_cannot_pile_renderings_up() {
    let gate = Arc::new(ScrapeGate::default());
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let render = || {
        let (running, most) = (running.clone(), most.clone());
        move || {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            running.fetch_sub(1, Ordering::SeqCst);
            String::new()
        }
    };
    // Each scraper gives up 10 ms in, while its rendering runs.
    for _ in 0..5 {
        let scrape = gate.clone().scrape(render());
        let _ = tokio::time::timeout(Duration::from_millis(10), scrape).await;
    }
    gate.clone().scrape(render()).await.expect("rendered");
    assert_eq!(most.load(Ordering::SeqCst), 1, "renderings at once");
}
