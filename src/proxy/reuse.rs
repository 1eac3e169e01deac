//! The one rule for giving an upstream connection back to the pool: only when the proxy
//! consumed its response's whole framing and nothing else can be waiting on it.
//!
//! A connection put back too early carries one client's bytes into another client's
//! response, so every reason to close is named here, and the check-in in
//! [`super::http`] asks this function and nothing else.

use crate::http::{BodyFraming, Method};

/// What the exchange knows about an upstream connection once its response has gone.
#[derive(Debug, Clone, Copy)]
pub struct ReuseFacts {
    pub method: Method,
    /// The whole request body went to the backend (or there was none).
    pub request_complete: bool,
    /// The backend's response allows another request (version and `Connection`).
    pub response_keep_alive: bool,
    /// The response's framing as the proxy read it.
    pub framing: BodyFraming,
    /// The response body was relayed to its end.
    pub response_complete: bool,
    /// Bytes past the end of the response were read with it.
    pub leftover: bool,
    /// The backend is still active (not draining or disabled).
    pub backend_active: bool,
    pub shutting_down: bool,
}

/// Why a connection is closed instead of pooled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// CONNECT: whatever follows a 2xx is a tunnel, never a response.
    Connect,
    /// The backend answered before the request body was sent whole (an early 413):
    /// the rest of the body never went, so the backend's framing is out of step.
    RequestIncomplete,
    /// The response said `Connection: close`, or is HTTP/1.0 without keep-alive.
    BackendCloses,
    /// The response ends at the close: there is no end short of it.
    CloseDelimited,
    /// The relay of the response stopped before its end.
    ResponseIncomplete,
    /// The backend sent more than the response.
    Leftover,
    /// The backend is draining or disabled: its connections go away.
    BackendInactive,
    ShuttingDown,
}

/// `Ok` when the connection may go back to the pool, or the first reason it may not.
pub fn reuse_verdict(facts: &ReuseFacts) -> Result<(), CloseReason> {
    let reason = if facts.method == Method::Connect {
        CloseReason::Connect
    } else if !facts.request_complete {
        CloseReason::RequestIncomplete
    } else if !facts.response_keep_alive {
        CloseReason::BackendCloses
    } else if facts.framing == BodyFraming::CloseDelimited {
        CloseReason::CloseDelimited
    } else if !facts.response_complete {
        CloseReason::ResponseIncomplete
    } else if facts.leftover {
        CloseReason::Leftover
    } else if !facts.backend_active {
        CloseReason::BackendInactive
    } else if facts.shutting_down {
        CloseReason::ShuttingDown
    } else {
        return Ok(());
    };
    Err(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REUSABLE: ReuseFacts = ReuseFacts {
        method: Method::Get,
        request_complete: true,
        response_keep_alive: true,
        framing: BodyFraming::Length(5),
        response_complete: true,
        leftover: false,
        backend_active: true,
        shutting_down: false,
    };

    #[test]
    fn a_clean_exchange_is_reused() {
        assert_eq!(reuse_verdict(&REUSABLE), Ok(()));
        let chunked = ReuseFacts { framing: BodyFraming::Chunked, ..REUSABLE };
        assert_eq!(reuse_verdict(&chunked), Ok(()));
        let bodiless = ReuseFacts { framing: BodyFraming::None, method: Method::Head, ..REUSABLE };
        assert_eq!(reuse_verdict(&bodiless), Ok(()));
    }

    #[test]
    fn connect_is_never_reused() {
        let facts = ReuseFacts { method: Method::Connect, framing: BodyFraming::None, ..REUSABLE };
        assert_eq!(reuse_verdict(&facts), Err(CloseReason::Connect));
    }

    #[test]
    fn an_early_answer_to_an_unfinished_upload_closes() {
        let facts = ReuseFacts { method: Method::Post, request_complete: false, ..REUSABLE };
        assert_eq!(reuse_verdict(&facts), Err(CloseReason::RequestIncomplete));
    }

    #[test]
    fn a_backend_that_closes_is_not_pooled() {
        let facts = ReuseFacts { response_keep_alive: false, ..REUSABLE };
        assert_eq!(reuse_verdict(&facts), Err(CloseReason::BackendCloses));
    }

    #[test]
    fn a_close_delimited_response_is_not_pooled() {
        let facts = ReuseFacts { framing: BodyFraming::CloseDelimited, ..REUSABLE };
        assert_eq!(reuse_verdict(&facts), Err(CloseReason::CloseDelimited));
    }

    #[test]
    fn a_response_relayed_in_part_is_not_pooled() {
        let facts = ReuseFacts { response_complete: false, ..REUSABLE };
        assert_eq!(reuse_verdict(&facts), Err(CloseReason::ResponseIncomplete));
    }

    #[test]
    fn bytes_past_the_response_are_not_pooled() {
        let facts = ReuseFacts { leftover: true, ..REUSABLE };
        assert_eq!(reuse_verdict(&facts), Err(CloseReason::Leftover));
    }

    #[test]
    fn a_draining_backend_and_a_shutdown_close() {
        let draining = ReuseFacts { backend_active: false, ..REUSABLE };
        assert_eq!(reuse_verdict(&draining), Err(CloseReason::BackendInactive));
        let stopping = ReuseFacts { shutting_down: true, ..REUSABLE };
        assert_eq!(reuse_verdict(&stopping), Err(CloseReason::ShuttingDown));
    }
}
