//! The HTTP/1 loop's guard phase: runs the gateway's steps (see `steps`) and answers a
//! request one of them stopped.

use super::{Client, Next, answer_error_with, answer_redirect, has_body, send_content};
use super::{Request, unread_body};
use crate::connection::guard::Checked;
use crate::connection::steps::{self, Stop};
use crate::http::RequestHead;

/// The guard phase: the listener's and route's checks, a CORS preflight, the route's
/// authentication, the consumer's limit and the route's redirect. `buf` comes back when
/// the request may go on; otherwise the answer was sent.
pub(super) async fn admit(
    client: &mut Client,
    route: Option<&crate::config::Route>,
    head: &RequestHead,
    buf: Vec<u8>,
) -> Result<Vec<u8>, (Next, Vec<u8>)> {
    let checked = Checked {
        listener: client.listener,
        route,
        peer: client.peer,
        buf: &buf,
        head,
        headers: &client.headers,
    };
    let worker = client.worker.clone();
    let peer_text = client.peer_text.as_bytes();
    let identity = &mut client.outcome.identity;
    let Err(stop) = steps::run(&worker, &checked, peer_text, identity).await else {
        return Ok(buf);
    };
    let mut buf = buf;
    buf.drain(..head.head_len as usize);
    let has_body = has_body(head);
    let keep_alive = head.keep_alive && !has_body && !worker.shutting_down.get();
    let next = match stop {
        Stop::Guard(refusal) => {
            // A body we did not read would be taken for the next request: close instead.
            let keep_alive = head.keep_alive && !has_body;
            let (error, headers) = (&refusal.error, refusal.headers.as_bytes());
            answer_error_with(client, error, Request::of(head), keep_alive, headers).await
        }
        Stop::Answer(answer) => send_content(client, &answer.content(), head, keep_alive).await,
        Stop::Redirect(status, location) => {
            answer_redirect(client, status, &location, head, keep_alive).await
        }
    };
    Err((unread_body(next, has_body), buf))
}
