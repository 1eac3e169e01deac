//! Why an exchange failed, who caused it, and what the client is told.

use crate::http::{ChunkedError, ParseError};
use crate::stats::RejectReason;

/// The side of the proxy a failure came from. Picks the log level and the metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
    Proxy,
}

/// Why a request could not be proxied. Every variant maps to exactly one status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("malformed request head: {0}")]
    BadRequest(ParseError),
    #[error("malformed chunked request body: {0}")]
    BadRequestBody(ChunkedError),
    #[error("request body larger than limits.body_bytes_max")]
    BodyTooLarge,
    #[error("client too slow to send its request head")]
    ClientTimeout,
    #[error("client too slow to send its request body")]
    ClientBodyTimeout,
    #[error("client closed the connection mid-request")]
    ClientClosed,
    #[error("client connection failed")]
    ClientIo,
    #[error("no route matches this request")]
    NoRoute,
    #[error("the client address is not allowed")]
    Forbidden,
    #[error("a route rule denies this request")]
    Denied,
    #[error("the route does not allow this method")]
    MethodNotAllowed,
    #[error("rate limit reached; retry in {retry_after_s} s")]
    TooManyRequests { retry_after_s: u32 },
    #[error("the client address holds limits.connections_per_ip_max connections")]
    TooManyConnections,
    #[error("no backend to send the request to")]
    NoBackend,
    #[error("cannot connect to the backend")]
    Connect,
    #[error("backend did not answer in time")]
    UpstreamTimeout,
    #[error("malformed response head from the backend: {0}")]
    BadResponse(ParseError),
    #[error("malformed chunked response body from the backend: {0}")]
    BadResponseBody(ChunkedError),
    #[error("backend switched protocols without being asked to")]
    UnexpectedUpgrade,
    #[error("backend closed the connection before the response was complete")]
    UpstreamClosed,
    #[error("backend connection failed")]
    UpstreamIo,
    /// The backend stopped taking the request body and sent no response: it may have
    /// timed out a slow client, so it does not count against the backend.
    #[error("backend stopped reading the request body without answering")]
    UpstreamStoppedReading,
}

// Errors travel on the hot path inside `Result`; keep them small.
const _: () = assert!(size_of::<ProxyError>() <= 16);

impl ProxyError {
    /// The status code the client receives. This is the only place that mapping lives.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(error) => parse_error_status(*error),
            Self::BadRequestBody(_) => 400,
            Self::BodyTooLarge => 413,
            // The client is gone or silent; 408 is what nginx and HAProxy send to a slow one.
            Self::ClientTimeout | Self::ClientBodyTimeout | Self::ClientClosed | Self::ClientIo => {
                408
            }
            Self::NoRoute => 404,
            Self::Forbidden | Self::Denied => 403,
            Self::MethodNotAllowed => 405,
            Self::TooManyRequests { .. } | Self::TooManyConnections => 429,
            Self::NoBackend => 503,
            Self::Connect
            | Self::BadResponse(_)
            | Self::BadResponseBody(_)
            | Self::UnexpectedUpgrade
            | Self::UpstreamClosed
            | Self::UpstreamIo
            | Self::UpstreamStoppedReading => 502,
            Self::UpstreamTimeout => 504,
        }
    }

    /// Who failed.
    pub fn side(&self) -> Side {
        match self {
            Self::BadRequest(_)
            | Self::BadRequestBody(_)
            | Self::BodyTooLarge
            | Self::ClientTimeout
            | Self::ClientBodyTimeout
            | Self::ClientClosed
            | Self::ClientIo => Side::Client,
            Self::NoRoute
            | Self::NoBackend
            | Self::Forbidden
            | Self::Denied
            | Self::MethodNotAllowed
            | Self::TooManyRequests { .. }
            | Self::TooManyConnections => Side::Proxy,
            Self::Connect
            | Self::UpstreamTimeout
            | Self::BadResponse(_)
            | Self::BadResponseBody(_)
            | Self::UnexpectedUpgrade
            | Self::UpstreamClosed
            | Self::UpstreamIo
            | Self::UpstreamStoppedReading => Side::Upstream,
        }
    }

    /// True when the failure is the backend's own and counts toward its passive
    /// ejection: a refused connect, no response in time, a response that does not parse,
    /// a close or reset before any response. What a client does (aborts, stalls, sends
    /// too slowly or too much) never counts, nor does a backend that stopped reading a
    /// body mid-way, which is what a backend does to a slow client.
    pub fn counts_against_backend(&self) -> bool {
        match self {
            Self::Connect
            | Self::UpstreamTimeout
            | Self::BadResponse(_)
            | Self::BadResponseBody(_)
            | Self::UnexpectedUpgrade
            | Self::UpstreamClosed
            | Self::UpstreamIo => true,
            Self::BadRequest(_)
            | Self::BadRequestBody(_)
            | Self::BodyTooLarge
            | Self::ClientTimeout
            | Self::ClientBodyTimeout
            | Self::ClientClosed
            | Self::ClientIo
            | Self::NoRoute
            | Self::NoBackend
            | Self::Forbidden
            | Self::Denied
            | Self::MethodNotAllowed
            | Self::TooManyRequests { .. }
            | Self::TooManyConnections
            | Self::UpstreamStoppedReading => false,
        }
    }

    /// True when the request may go to another backend after this failure. A refused
    /// connect sent nothing; the other backend failures before a response are safe to
    /// retry only for a `replayable` request (idempotent, and its body still at hand).
    pub fn is_retryable(&self, replayable: bool) -> bool {
        match self {
            Self::Connect => true,
            Self::UpstreamIo | Self::UpstreamClosed | Self::UpstreamTimeout => replayable,
            Self::BadRequest(_)
            | Self::BadRequestBody(_)
            | Self::BodyTooLarge
            | Self::ClientTimeout
            | Self::ClientBodyTimeout
            | Self::ClientClosed
            | Self::ClientIo
            | Self::NoRoute
            | Self::NoBackend
            | Self::Forbidden
            | Self::Denied
            | Self::MethodNotAllowed
            | Self::TooManyRequests { .. }
            | Self::TooManyConnections
            | Self::BadResponse(_)
            | Self::BadResponseBody(_)
            | Self::UnexpectedUpgrade
            | Self::UpstreamStoppedReading => false,
        }
    }

    /// True when the client connection may serve another request after this error's
    /// response: the request was read whole and its framing was understood.
    pub fn keeps_client(&self) -> bool {
        match self {
            Self::NoRoute
            | Self::NoBackend
            | Self::Forbidden
            | Self::Denied
            | Self::MethodNotAllowed
            | Self::TooManyRequests { .. } => true,
            Self::BadRequest(_)
            | Self::BadRequestBody(_)
            | Self::BodyTooLarge
            | Self::ClientTimeout
            | Self::ClientBodyTimeout
            | Self::ClientClosed
            | Self::ClientIo
            // Refused before its request was read.
            | Self::TooManyConnections
            | Self::Connect
            | Self::UpstreamTimeout
            | Self::BadResponse(_)
            | Self::BadResponseBody(_)
            | Self::UnexpectedUpgrade
            | Self::UpstreamClosed
            | Self::UpstreamIo
            | Self::UpstreamStoppedReading => false,
        }
    }

    /// True when the client can still be told: it has not gone away.
    pub fn is_answerable(&self) -> bool {
        !matches!(self, Self::ClientClosed | Self::ClientIo)
    }
}

/// The status for a rejected request head.
fn parse_error_status(error: ParseError) -> u16 {
    match error {
        ParseError::HeadTooLarge { .. } | ParseError::TooManyHeaders { .. } => 431,
        ParseError::UriTooLong { .. } => 414,
        ParseError::UnsupportedVersion => 505,
        ParseError::UnsupportedTransferCoding => 501,
        ParseError::ContentLengthAndTransferEncoding
        | ParseError::BadContentLength
        | ParseError::MissingHost
        | ParseError::DuplicateHost
        | ParseError::Malformed(_) => 400,
    }
}

impl ProxyError {
    /// The rejection a client-side error counts as in the stats, if it is one.
    pub fn reject_reason(&self) -> Option<RejectReason> {
        Some(match self {
            Self::BadRequest(ParseError::HeadTooLarge { .. }) => RejectReason::HeadTooLarge,
            Self::BadRequest(ParseError::TooManyHeaders { .. }) => RejectReason::TooManyHeaders,
            Self::BadRequest(ParseError::UriTooLong { .. }) => RejectReason::UriTooLong,
            Self::BadRequest(ParseError::UnsupportedVersion) => RejectReason::UnsupportedVersion,
            Self::BadRequest(ParseError::UnsupportedTransferCoding) => {
                RejectReason::UnsupportedTransferCoding
            }
            Self::BadRequest(
                ParseError::ContentLengthAndTransferEncoding
                | ParseError::BadContentLength
                | ParseError::MissingHost
                | ParseError::DuplicateHost
                | ParseError::Malformed(_),
            )
            | Self::BadRequestBody(_) => RejectReason::Malformed,
            Self::BodyTooLarge => RejectReason::BodyTooLarge,
            Self::ClientTimeout => RejectReason::HeaderTimeout,
            Self::ClientBodyTimeout => RejectReason::BodyTimeout,
            Self::NoRoute => RejectReason::NoRoute,
            Self::Forbidden => RejectReason::Forbidden,
            Self::Denied | Self::MethodNotAllowed => RejectReason::Filtered,
            Self::TooManyRequests { .. } => RejectReason::RateLimited,
            Self::TooManyConnections => RejectReason::ConnectionLimit,
            Self::ClientClosed
            | Self::ClientIo
            | Self::NoBackend
            | Self::Connect
            | Self::UpstreamTimeout
            | Self::BadResponse(_)
            | Self::BadResponseBody(_)
            | Self::UnexpectedUpgrade
            | Self::UpstreamClosed
            | Self::UpstreamIo
            | Self::UpstreamStoppedReading => return None,
        })
    }
}
