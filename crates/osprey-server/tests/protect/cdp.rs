//! Headless Chromium driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: JSON messages ended by a NUL byte, commands on the
//! browser's fd 3, answers on its fd 4), so a test can type into a page and click
//! without a WebSocket client. Blocking: run it on a blocking thread.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn chromium() -> String {
    std::env::var("OSPREY_CHROMIUM").unwrap_or_else(|_| "chromium".into())
}

pub struct Browser {
    child: Child,
    to: ChildStdin,
    from: BufReader<ChildStdout>,
    next_id: u64,
    /// The page's DevTools session.
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A fresh profile and one blank page.
    pub fn start() -> Self {
        let profile = tempfile::tempdir().expect("a profile directory");
        // The shell hands the pipes to the browser as fds 3 and 4.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2"#)
            .arg(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "running {} failed ({e}); install it with `make chromium`",
                    chromium()
                )
            });
        let to = child.stdin.take().expect("the browser's command pipe");
        let from = BufReader::new(child.stdout.take().expect("the browser's answer pipe"));
        let mut b = Self {
            child,
            to,
            from,
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = b
            .call(None, "Target.createTarget", json!({"url": "about:blank"}))
            .expect("a page");
        let attached = b
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .expect("attached to the page");
        b.session = attached["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        b
    }

    /// One command and its result, or its error message. Events are skipped.
    fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("JSON");
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to the browser");
        self.to.flush().expect("write to the browser");
        loop {
            let mut buf = Vec::new();
            let n = self
                .from
                .read_until(0, &mut buf)
                .expect("read from the browser");
            assert!(n > 0, "the browser closed its pipe");
            buf.pop();
            let answer: Value = serde_json::from_slice(&buf).expect("a JSON message");
            if answer["id"] != json!(id) {
                continue;
            }
            return match answer.get("error") {
                Some(e) => Err(e.to_string()),
                None => Ok(answer["result"].clone()),
            };
        }
    }

    pub fn navigate(&mut self, url: &str) {
        let session = self.session.clone();
        self.call(Some(&session), "Page.navigate", json!({"url": url}))
            .expect("navigate");
    }

    /// Runs `js` in the page (awaiting a promise) and gives its value; `None` when
    /// it threw, or the page was between documents.
    pub fn eval(&mut self, js: &str) -> Option<Value> {
        let session = self.session.clone();
        let r = self
            .call(
                Some(&session),
                "Runtime.evaluate",
                json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
            )
            .ok()?;
        if r.get("exceptionDetails").is_some() {
            return None;
        }
        Some(r["result"]["value"].clone())
    }

    /// Polls `js` until it gives something other than false, null, an empty
    /// string or nothing.
    pub fn wait_for(&mut self, what: &str, js: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            match self.eval(js) {
                Some(Value::Null | Value::Bool(false)) | None => {}
                Some(Value::String(s)) if s.is_empty() => {}
                Some(v) => return v,
            }
            if Instant::now() > deadline {
                let page = self
                    .eval("document.documentElement.outerHTML")
                    .unwrap_or_default();
                panic!("no {what} within {timeout:?}; the page: {page}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    /// Asks the browser to close (it takes its helper processes with it), and
    /// kills it if it has not after a while. Never panics: it may run while a
    /// failed test unwinds.
    fn drop(&mut self) {
        let _ = self
            .to
            .write_all(b"{\"id\":0,\"method\":\"Browser.close\",\"params\":{}}\0")
            .and_then(|()| self.to.flush());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
