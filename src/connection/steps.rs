//! The gateway's steps of the guard phase, the same for an HTTP/1 request and an HTTP/2
//! stream: the listener's and route's checks, a CORS preflight, the route's
//! authentication, the consumer's limit, then the route's redirect. Each protocol's loop
//! renders the answer a step stopped the request with.

use super::edits;
use super::guard::{self, Checked, Refusal};
use crate::auth::rules::Identity;
use crate::response::Content;
use crate::worker::Worker;
use std::rc::Rc;

/// Why a step stopped the request, and what answers it.
#[derive(Debug)]
pub(super) enum Stop {
    /// The listener's or route's guard, or the consumer's limit, refused it.
    Guard(Refusal),
    /// A preflight's answer (204 or 403), or a refusal by authentication or
    /// authorization (401 with a challenge per method, 403, 503).
    Answer(Answer),
    /// The route's redirect rule applies: status and `Location`.
    Redirect(u16, Vec<u8>),
}

/// A plain-text answer a step made.
#[derive(Debug)]
pub(super) struct Answer {
    status: u16,
    /// Header lines, each ending in CRLF.
    extra: Vec<u8>,
    body: Vec<u8>,
}

impl Answer {
    pub(super) fn content(&self) -> Content<'_> {
        Content {
            status: self.status,
            content_type: b"text/plain; charset=utf-8",
            extra: &self.extra,
            body: &self.body,
        }
    }
}

/// Runs the steps in order for `checked`. When the request may go on, the identity the
/// route's authentication found is in `identity`.
pub(super) async fn run(
    worker: &Worker,
    checked: &Checked<'_>,
    peer_text: &[u8],
    identity: &mut Option<Rc<Identity>>,
) -> Result<(), Stop> {
    guard::check(worker, checked).map_err(Stop::Guard)?;
    let (route, head, buf) = (checked.route, checked.head, checked.buf);
    // A preflight carries no credentials: it is answered before authentication.
    if let Some(cors) = edits::preflight(route, head, buf, checked.headers) {
        let origin = crate::http::find_header(buf, checked.headers, b"origin");
        let answer = match cors.allowed(origin) {
            Some(origin) => {
                Answer { status: 204, extra: cors.preflight_lines(origin), body: vec![] }
            }
            None => {
                let body = b"403 Forbidden: origin not allowed\n".to_vec();
                Answer { status: 403, extra: Vec::new(), body }
            }
        };
        return Err(Stop::Answer(answer));
    }
    *identity = authenticate(worker, checked, peer_text).await?;
    let consumer = identity.as_ref().map_or("", |identity| &*identity.consumer);
    guard::check_consumer(worker, route, consumer).map_err(Stop::Guard)?;
    match edits::redirect(route, head, buf) {
        Some((status, location)) => Err(Stop::Redirect(status, location)),
        None => Ok(()),
    }
}

/// The route's authentication and authorization (when it has an `auth` policy): who the
/// client is, or the refusal with its challenges.
async fn authenticate(
    worker: &Worker,
    checked: &Checked<'_>,
    peer_text: &[u8],
) -> Result<Option<Rc<Identity>>, Stop> {
    let Some(route) = checked.route else { return Ok(None) };
    let Some(policy) = route.auth.as_deref() else { return Ok(None) };
    let asked = crate::auth::Asked {
        head: checked.head,
        headers: checked.headers,
        buf: checked.buf,
        client: peer_text,
    };
    let verdict = crate::auth::authenticate(&worker.auth, policy, &asked).await;
    let mut stats = worker.stats.borrow_mut();
    let refusal = match verdict {
        Ok(identity) => {
            stats.auth_outcome(route.id, Some(identity.method), None);
            stats.consumer_request(route.id, &identity.consumer);
            return Ok(Some(identity));
        }
        Err(refusal) => refusal,
    };
    stats.auth_outcome(route.id, refusal.method, Some(refusal.reason));
    let extra = if refusal.status == 401 { policy.challenges(&refusal) } else { Vec::new() };
    let reason = crate::http::status::reason(refusal.status);
    let body = format!("{} {reason}: {}\n", refusal.status, refusal.reason.as_str());
    Err(Stop::Answer(Answer { status: refusal.status, extra, body: body.into_bytes() }))
}
