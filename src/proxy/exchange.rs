//! The contract of one exchange, and nothing else: what the connection hands the proxy's
//! phases (the request, the downstream it came on, where it goes) and what it gets back
//! (how the exchange ended, and a report for stats and the access log).
//!
//! The downstream is a closed enum: HTTP/1 now, HTTP/2 streams next, each reaching every
//! phase through the same reads and writes.

use super::body::{Sink, Source};
use super::request_head::ForwardHead;
use crate::config::{BackendId, ClusterId};
use crate::http::{HeaderLine, RequestHead};
use crate::http2::stream::H2Stream;
use crate::tls::{ClientStream, UpstreamStream};
use crate::upstream::PoolLimits;
use crate::worker::Worker;
use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use std::net::SocketAddr;
use std::time::Duration;

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A configured cluster: balanced over its backends, with its retries and pool.
    Cluster(ClusterId),
    /// Addresses the request named itself, that no cluster holds (a forward proxy's).
    Direct(DirectTarget),
}

/// Addresses of one direct target tried at most, in order.
pub const DIRECT_ADDRS_MAX: usize = 4;

/// A forward proxy's target: the addresses its name resolved to, tried in order until one
/// takes a connection (both families, RFC 6724 order), and the listener's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectTarget {
    addrs: [SocketAddr; DIRECT_ADDRS_MAX],
    len: usize,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub limits: PoolLimits,
}

impl DirectTarget {
    /// No addresses yet; [`DirectTarget::push`] adds them.
    pub fn new(connect_timeout: Duration, response_timeout: Duration, limits: PoolLimits) -> Self {
        let unset = SocketAddr::from(([0, 0, 0, 0], 0));
        Self { addrs: [unset; DIRECT_ADDRS_MAX], len: 0, connect_timeout, response_timeout, limits }
    }

    /// Adds `addr`; past [`DIRECT_ADDRS_MAX`] addresses the rest are not tried.
    pub fn push(&mut self, addr: SocketAddr) {
        if self.len < DIRECT_ADDRS_MAX {
            self.addrs[self.len] = addr;
            self.len += 1;
        }
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs[..self.len]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The client side of an exchange: where the request came from and the response goes.
#[derive(Debug)]
pub enum Downstream<'a> {
    /// An HTTP/1.x connection: the request head's spans index its read buffer.
    H1(&'a mut ClientStream),
    /// One stream of an HTTP/2 connection: its head was written as an HTTP/1.1 head, its
    /// body reads and its response writes go through the stream.
    H2(&'a mut H2Stream),
}

impl Downstream<'_> {
    /// The same downstream, borrowed for a shorter exchange (a background refresh).
    pub fn reborrow(&mut self) -> Downstream<'_> {
        match self {
            Self::H1(stream) => Downstream::H1(stream),
            Self::H2(stream) => Downstream::H2(stream),
        }
    }
}

impl AsyncReadRent for Downstream<'_> {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Self::H1(stream) => stream.read(buf).await,
            Self::H2(stream) => stream.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Self::H1(stream) => stream.readv(buf).await,
            Self::H2(stream) => stream.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for Downstream<'_> {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Self::H1(stream) => stream.write(buf).await,
            Self::H2(stream) => stream.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Self::H1(stream) => stream.writev(buf).await,
            Self::H2(stream) => stream.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::H1(stream) => stream.flush().await,
            Self::H2(stream) => stream.flush().await,
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            Self::H1(stream) => stream.shutdown().await,
            Self::H2(stream) => stream.shutdown().await,
        }
    }
}

impl Source for Downstream<'_> {
    async fn readable(&mut self) {
        match self {
            Self::H1(stream) => Source::readable(&mut **stream).await,
            Self::H2(stream) => Source::readable(&mut **stream).await,
        }
    }
}

impl Sink for Downstream<'_> {
    /// A client is never watched for an early answer: it has asked, the proxy answers.
    async fn answered(&self) {
        std::future::pending().await
    }

    async fn writable(&self) {
        match self {
            Self::H1(stream) => Sink::writable(&**stream).await,
            Self::H2(stream) => Sink::writable(&**stream).await,
        }
    }
}

/// The request as the phases read it: its parsed head and header lines, whose spans
/// index the buffer the exchange was handed.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub head: &'a RequestHead,
    pub headers: &'a [HeaderLine],
}

/// What one exchange needs from its connection.
#[derive(Debug)]
pub struct Exchange<'a> {
    pub worker: &'a Worker,
    pub downstream: Downstream<'a>,
    pub request: RequestView<'a>,
    pub target: Target,
    /// The client came over TLS: `X-Forwarded-Proto: https`.
    pub https: bool,
    /// Header lines added to every response: the listener's (HSTS) and the route's
    /// rewrite and CORS lines, or empty.
    pub response_headers: &'a [u8],
    /// Lowercase names of the backend's response lines the client never gets.
    pub response_dropped: &'a [Box<[u8]>],
    pub peer: SocketAddr,
    /// `peer`'s address as text, for X-Forwarded-For.
    pub peer_text: &'a [u8],
    /// A request id the proxy generated, sent upstream in `request_id_header`.
    pub request_id: Option<&'a [u8]>,
    /// Filled in as the exchange goes, for stats and the access log.
    pub report: &'a mut ExchangeReport,
    /// The read phase already sent `100 Continue` (see [`super::buffer`]).
    pub continue_sent: bool,
    /// The route's compression and what the client accepts, when the route compresses.
    pub compression: Option<super::compression::RouteCompression<'a>>,
    /// The route's response cache, when it has one, and the route (for its counters).
    pub cache: Option<(crate::config::RouteId, &'a crate::config::RouteCache)>,
    /// Lines the cache phase adds to the forwarded request to revalidate a stored
    /// response (`If-None-Match`, `If-Modified-Since`); empty otherwise.
    pub revalidation: Vec<u8>,
    /// A forward proxy's head edits (anonymity, header lists), on a forward listener.
    pub forward: Option<ForwardHead<'a>>,
    /// The route's request head edits (identity lines, stripped credentials, rewrites).
    pub route: Option<super::request_head::RouteHead<'a>>,
}

/// How an exchange ended, when the client got a response.
#[derive(Debug)]
pub enum ExchangeEnd {
    /// The response was sent whole; the client connection may carry another request
    /// when `keep_alive`. `body_unread`: the backend answered before the request body
    /// was read whole, so the client is still sending it (the caller drains it a while
    /// before closing, so the client reads the answer instead of a reset).
    Done { keep_alive: bool, body_unread: bool },
    /// The backend switched protocols: the caller tunnels between the client and
    /// `upstream`, sending `to_client` first.
    Upgrade { upstream: UpstreamStream, to_client: Vec<u8> },
}

/// What happened in one exchange, for the stats and the access log.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExchangeReport {
    /// The backend that answered, or the last one tried.
    pub backend: Option<BackendId>,
    pub upstream_addr: Option<SocketAddr>,
    /// Time to the response head's first byte from the backend that answered.
    pub upstream_time: Option<Duration>,
    /// The backend's status; the caller uses its own status for errors.
    pub status: u16,
    /// Request bytes taken from the client: head and body.
    pub bytes_in: u64,
    /// Response bytes written to the client.
    pub bytes_out: u64,
    /// Of those, body bytes (nginx's `$body_bytes_sent`, for the access log).
    pub body_bytes_out: u64,
}
