//! Admin routes and the dashboard: admin-scoped with auth on; with auth off, only
//! for clients on this machine unless `server.allow_open_admin` opens them.

use super::*;

async fn send(req: reqwest::RequestBuilder) -> Reply {
    Reply::read(req.send().await.expect("send")).await
}

#[tokio::test]
async fn with_auth_off_admin_routes_answer_only_local_clients() {
    let _g = shared().await;
    let s = guarded_server();
    let c = client();
    let remote = "198.51.100.3";
    for path in ["/admin/stats", "/dashboard", "/dashboard/data"] {
        let r = send(c.get(format!("{}{path}", s.base))).await;
        assert_eq!(r.status, 200, "{path} from this machine: {}", r.text);
        // Through a proxy on this machine that is not a trusted one, the client
        // is somewhere else.
        let r = send(
            c.get(format!("{}{path}", s.base))
                .header("x-forwarded-for", remote),
        )
        .await;
        r.assert_error(403, path);
        assert!(r.text.contains("allow_open_admin"), "{}", r.text);
    }
    let r = send(
        c.delete(format!("{}/admin/cache", s.base))
            .header("forwarded", format!("for={remote}")),
    )
    .await;
    r.assert_error(403, "DELETE /admin/cache for a remote client");
    let r = send(
        c.get(format!("{}/admin/profile?seconds=61", s.base))
            .header("x-forwarded-for", remote),
    )
    .await;
    r.assert_error(403, "a profile for a remote client");
    // Inference stays open to everyone with auth off.
    let r = send(
        c.post(format!("{}/embed", s.base))
            .header("x-forwarded-for", remote)
            .json(&json!({"inputs": "open"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn allow_open_admin_opens_them_to_everyone() {
    static S: OnceLock<TestServer> = OnceLock::new();
    let s = S.get_or_init(|| {
        let server = ServerConfig {
            allow_open_admin: true,
            ..small_limits()
        };
        start_with(server, BatchingConfig::default(), Protection::default())
    });
    let r = send(
        client()
            .get(format!("{}/dashboard/data", s.base))
            .header("x-forwarded-for", "198.51.100.3"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn with_auth_on_the_dashboard_needs_the_admin_scope() {
    let s = auth_server();
    let c = client();
    for path in ["/dashboard", "/dashboard/data"] {
        let r = send(c.get(format!("{}{path}", s.base)).bearer_auth(INFER_KEY)).await;
        r.assert_error(403, path);
        let r = send(c.get(format!("{}{path}", s.base)).bearer_auth(ADMIN_KEY)).await;
        assert_eq!(r.status, 200, "{path} with the admin key: {}", r.text);
    }
}
