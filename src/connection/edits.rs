//! A route's per-request head edits, computed once the guard phase let the request in:
//! the lines the backend gets (identity, then the rewrite's), the rewritten target, the
//! lines added to the response, and a redirect the route answers itself.

use crate::auth::rules::Identity;
use crate::config::Route;
use crate::http::{HeaderLine, RequestHead, find_header};
use crate::proxy::request_head::RouteHead;
use crate::rewrite::Vars;
use crate::rewrite::cors::{Cors, is_preflight};

/// What the edits depend on besides the route.
#[derive(Debug, Clone, Copy)]
pub(super) struct Facts<'a> {
    pub(super) head: &'a RequestHead,
    pub(super) buf: &'a [u8],
    pub(super) headers: &'a [HeaderLine],
    pub(super) identity: Option<&'a Identity>,
    pub(super) peer_text: &'a [u8],
    pub(super) request_id: &'a [u8],
    /// The listener's own response lines (HSTS).
    pub(super) listener_lines: &'a [u8],
}

/// One request's edits.
#[derive(Debug, Default)]
pub(super) struct RouteEdits {
    pub(super) request_lines: Vec<u8>,
    pub(super) target: Option<Vec<u8>>,
    /// The listener's lines and the route's, when the route adds any.
    pub(super) response_lines: Option<Vec<u8>>,
}

impl RouteEdits {
    /// What the exchange changes in the request head for `route`.
    pub(super) fn route_head<'a>(&'a self, route: Option<&'a Route>) -> Option<RouteHead<'a>> {
        route.map(|route| RouteHead {
            dropped: &route.request_dropped,
            lines: &self.request_lines,
            target: self.target.as_deref(),
        })
    }
}

/// The response header names `route`'s rewrite drops.
pub(super) fn response_dropped(route: Option<&Route>) -> &[Box<[u8]>] {
    let rewrite = route.and_then(|route| route.rewrite.as_deref());
    rewrite.map_or(&[], |rewrite| &rewrite.response_headers.dropped)
}

fn vars<'a>(facts: &Facts<'a>, route_name: &'a str) -> Vars<'a> {
    let Facts { head, buf, identity, .. } = *facts;
    Vars {
        client_addr: facts.peer_text,
        request_id: facts.request_id,
        host: head.effective_host().map_or(&b""[..], |host| host.of(buf)),
        route: route_name,
        consumer: identity.map_or("", |identity| &identity.consumer),
        path: head.path.of(buf),
        claims: identity.map(|identity| &identity.claims),
    }
}

/// The edits of `route` for this request.
pub(super) fn route_edits(route: Option<&Route>, facts: &Facts<'_>) -> RouteEdits {
    let Some(route) = route else { return RouteEdits::default() };
    let policy = route.auth.as_deref();
    let mut edits = RouteEdits {
        request_lines: crate::auth::identity_lines(policy, facts.identity),
        ..RouteEdits::default()
    };
    if let Some(cors) = route.cors.as_deref() {
        let origin = find_header(facts.buf, facts.headers, b"origin");
        if let Some(origin) = cors.allowed(origin) {
            let mut lines = facts.listener_lines.to_vec();
            cors.response_lines(origin, &mut lines);
            edits.response_lines = Some(lines);
        }
    }
    let Some(rewrite) = route.rewrite.as_deref() else { return edits };
    let name = route.id.0.to_string();
    let vars = vars(facts, &name);
    rewrite.request_headers.render(&vars, &mut edits.request_lines);
    let origin = facts.head.origin.of(facts.buf);
    edits.target = rewrite.path.as_ref().and_then(|path| path.apply(origin));
    if !rewrite.response_headers.lines.is_empty() {
        let lines = edits.response_lines.get_or_insert_with(|| facts.listener_lines.to_vec());
        rewrite.response_headers.render(&vars, lines);
    }
    edits
}

/// The redirect `route` answers this request with, if its rule applies: status and
/// `Location`.
pub(super) fn redirect(
    route: Option<&Route>,
    head: &RequestHead,
    buf: &[u8],
) -> Option<(u16, Vec<u8>)> {
    let rule = route?.rewrite.as_deref()?.redirect.as_ref()?;
    rule.location(head.origin.of(buf)).map(|location| (rule.status, location))
}

/// The route's CORS settings when this request is a preflight it answers.
pub(super) fn preflight<'r>(
    route: Option<&'r Route>,
    head: &RequestHead,
    buf: &[u8],
    headers: &[HeaderLine],
) -> Option<&'r Cors> {
    let cors = route?.cors.as_deref()?;
    let origin = find_header(buf, headers, b"origin");
    let asked = find_header(buf, headers, b"access-control-request-method");
    is_preflight(head.method_span.of(buf), origin, asked).then_some(cors)
}
