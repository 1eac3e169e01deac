//! The HTTP/1 loop's guard phase with the gateway's steps: the listener's and route's
//! checks, CORS preflights, authentication and its refusals, the consumer's limit, and
//! redirects (see `auth` and `rewrite`).

use super::{Client, Next, answer_redirect, has_body, refuse_by_guard, send_content, unread_body};
use crate::connection::edits;
use crate::connection::guard::{self, Checked};
use crate::http::RequestHead;
use crate::response;

/// The guard phase: the listener's and route's checks, then the route's authentication.
/// `buf` comes back when the request may go on; otherwise the refusal was answered.
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
    if let Err(refusal) = guard::check(&client.worker, &checked) {
        return Err(refuse_by_guard(client, head, buf, &refusal).await);
    }
    // A preflight carries no credentials: it is answered before authentication.
    if let Some(cors) = edits::preflight(route, head, &buf, &client.headers) {
        return Err(answer_preflight(client, head, buf, cors).await);
    }
    if let Some((policy, refusal)) = authenticate(client, route, head, &buf).await {
        return Err(refuse_by_auth(client, head, buf, policy, refusal).await);
    }
    let consumer = client.outcome.identity.as_ref().map(|identity| &*identity.consumer);
    if let Err(refusal) = guard::check_consumer(&client.worker, route, consumer.unwrap_or("")) {
        return Err(refuse_by_guard(client, head, buf, &refusal).await);
    }
    let Some((status, location)) = edits::redirect(route, head, &buf) else { return Ok(buf) };
    let mut buf = buf;
    buf.drain(..head.head_len as usize);
    let has_body = has_body(head);
    let keep_alive = head.keep_alive && !has_body && !client.worker.shutting_down.get();
    let next = answer_redirect(client, status, &location, head, keep_alive).await;
    Err((unread_body(next, has_body), buf))
}

/// Answers a CORS preflight: 204 with the allowed methods and headers for an allowed
/// origin, 403 for another.
async fn answer_preflight(
    client: &mut Client,
    head: &RequestHead,
    mut buf: Vec<u8>,
    cors: &crate::rewrite::cors::Cors,
) -> (Next, Vec<u8>) {
    let origin = crate::http::find_header(&buf, &client.headers, b"origin");
    let lines = cors.allowed(origin).map(|origin| cors.preflight_lines(origin));
    buf.drain(..head.head_len as usize);
    let has_body = has_body(head);
    let keep_alive = head.keep_alive && !has_body && !client.worker.shutting_down.get();
    let (status, body): (u16, &[u8]) = match &lines {
        Some(_) => (204, b""),
        None => (403, b"403 Forbidden: origin not allowed\n"),
    };
    let extra = lines.as_deref().unwrap_or_default();
    let content_type = b"text/plain; charset=utf-8";
    let content = response::Content { status, content_type, extra, body };
    let next = send_content(client, &content, head, keep_alive).await;
    (unread_body(next, has_body), buf)
}

/// The route's authentication and authorization (when it has an `auth` policy): the
/// identity goes in the outcome, or the policy and its refusal come back.
async fn authenticate<'r>(
    client: &mut Client,
    route: Option<&'r crate::config::Route>,
    head: &RequestHead,
    buf: &[u8],
) -> Option<(&'r crate::auth::AuthPolicy, crate::auth::Refusal)> {
    let policy = route.and_then(|route| route.auth.as_deref())?;
    let client_text = client.peer_text.as_bytes();
    let asked = crate::auth::Asked { head, headers: &client.headers, buf, client: client_text };
    let verdict = crate::auth::authenticate(&client.worker.auth, policy, &asked).await;
    let route_id = route.map(|route| route.id)?;
    let mut stats = client.worker.stats.borrow_mut();
    match verdict {
        Ok(identity) => {
            stats.auth_outcome(route_id, Some(identity.method), None);
            stats.consumer_request(route_id, &identity.consumer);
            drop(stats);
            client.outcome.identity = Some(identity);
            None
        }
        Err(refusal) => {
            stats.auth_outcome(route_id, refusal.method, Some(refusal.reason));
            Some((policy, refusal))
        }
    }
}

/// Answers a request the route's authentication or authorization refused: 401 with a
/// challenge per method, 403, or 503 when credentials could not be checked.
async fn refuse_by_auth(
    client: &mut Client,
    head: &RequestHead,
    mut buf: Vec<u8>,
    policy: &crate::auth::AuthPolicy,
    refusal: crate::auth::Refusal,
) -> (Next, Vec<u8>) {
    buf.drain(..head.head_len as usize);
    let has_body = has_body(head);
    let keep_alive = head.keep_alive && !has_body && !client.worker.shutting_down.get();
    let challenges = if refusal.status == 401 { policy.challenges(&refusal) } else { Vec::new() };
    let reason = crate::http::status::reason(refusal.status);
    let body = format!("{} {reason}: {}\n", refusal.status, refusal.reason.as_str());
    let content = response::Content {
        status: refusal.status,
        content_type: b"text/plain; charset=utf-8",
        extra: &challenges,
        body: body.as_bytes(),
    };
    let next = send_content(client, &content, head, keep_alive).await;
    (unread_body(next, has_body), buf)
}
