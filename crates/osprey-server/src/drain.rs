//! Draining on shutdown: while the server drains, every HTTP/1 answer closes its
//! connection, so clients that keep connections alive (a layer-4 load balancer
//! pins each connection to one backend) reconnect to a server that stays.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Version, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

pub async fn close_when_draining(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    // HTTP/2 has no `Connection` header; its connections end with GOAWAY when
    // the listener stops.
    let http1 = matches!(req.version(), Version::HTTP_10 | Version::HTTP_11);
    let mut response = next.run(req).await;
    if http1 && state.is_draining() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
