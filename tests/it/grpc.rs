//! gRPC requests over HTTP/2 clients: errors the proxy makes itself are gRPC statuses
//! (HTTP 200, trailers-only `grpc-status`/`grpc-message`), and `grpc-timeout` bounds the
//! wait for the backend. (Trailers from a backend to the client: tests/it/http2.rs.)

use crate::support::origin::{Origin, Reply};
use crate::support::{Driver, on_both_drivers, start_proxy, to_origin, unused_addr};
use bytes::Bytes;
use std::time::{Duration, Instant};

on_both_drivers!(proxy_errors_are_grpc_statuses, grpc_timeout_bounds_the_upstream_wait);

/// A unary gRPC call's request head (`te: trailers`, `grpc-timeout` when given).
fn call(timeout: Option<&str>) -> http::Request<()> {
    let mut request = http::Request::post("http://app.test/echo.Echo/Say")
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(timeout) = timeout {
        request = request.header("grpc-timeout", timeout);
    }
    request.body(()).expect("a request")
}

/// Sends `request` with a 5-byte gRPC message and returns the status and the gRPC status
/// (from the head of a trailers-only answer, or from the trailers).
async fn send(
    send: &mut h2::client::SendRequest<Bytes>,
    request: http::Request<()>,
) -> (u16, Option<String>, Option<String>) {
    let mut ready = send.clone().ready().await.expect("ready");
    let (response, mut body) = ready.send_request(request, false).expect("send");
    body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true).expect("the message");
    let response = response.await.expect("a response");
    let status = response.status().as_u16();
    let header = |name: &str, headers: &http::HeaderMap| {
        headers.get(name).map(|value| value.to_str().expect("ASCII").to_owned())
    };
    let (mut code, mut message) =
        (header("grpc-status", response.headers()), header("grpc-message", response.headers()));
    let mut recv = response.into_body();
    while let Some(data) = recv.data().await {
        data.expect("data");
    }
    if let Some(trailers) = recv.trailers().await.expect("trailers") {
        code = code.or(header("grpc-status", &trailers));
        message = message.or(header("grpc-message", &trailers));
    }
    (status, code, message)
}

/// Runs `body` with an h2c client of `addr` on a tokio runtime of its own.
fn with_client<F, Fut, T>(addr: std::net::SocketAddr, body: F) -> T
where
    F: FnOnce(h2::client::SendRequest<Bytes>) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    runtime.expect("a tokio runtime").block_on(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (send, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        tokio::time::timeout(Duration::from_secs(20), body(send)).await.expect("in time")
    })
}

fn proxy_errors_are_grpc_statuses(driver: Driver) {
    let proxy = start_proxy(&to_origin(driver, unused_addr(), ""));
    let (grpc, plain) = with_client(proxy.addr(), |mut client| async move {
        let grpc = send(&mut client, call(None)).await;
        let plain = http::Request::post("http://app.test/").body(()).expect("a request");
        let plain = send(&mut client, plain).await;
        (grpc, plain)
    });
    // No backend takes the connection: UNAVAILABLE, as gRPC clients expect it.
    assert_eq!(grpc.0, 200);
    assert_eq!(grpc.1.as_deref(), Some("14"));
    assert_eq!(grpc.2.as_deref(), Some("cannot connect to the backend"));
    // The same failure for a request that is no gRPC is an HTTP error.
    assert_eq!((plain.0, plain.1), (502, None));
}

fn grpc_timeout_bounds_the_upstream_wait(driver: Driver) {
    let origin = Origin::start(|_| Reply::Hold);
    // The cluster would wait 30 s; the client's deadline is 300 ms.
    let proxy = start_proxy(&to_origin(driver, origin.addr(), "response_timeout_ms = 30000"));
    let started = Instant::now();
    let answer = with_client(proxy.addr(), |mut client| async move {
        send(&mut client, call(Some("300m"))).await
    });
    let waited = started.elapsed();
    assert_eq!((answer.0, answer.1.as_deref()), (200, Some("4")), "DEADLINE_EXCEEDED");
    assert!(waited >= Duration::from_millis(300), "answered before the deadline: {waited:?}");
    assert!(waited < Duration::from_secs(5), "the deadline did not bound the wait: {waited:?}");
    assert_eq!(origin.requests().len(), 1, "the call reached the backend");
}
