//! The filtering transform of the relay (its steps come through [`super::transform`]):
//! decoded body bytes go through a forward proxy's [`BodyFilter`], which holds the
//! response head and at most a window of bytes back; what it releases is framed and
//! queued, and a refusal is sent in place of the response (its 403 page, when the head
//! was still held) before the relay stops.

use super::{Body, RelayError, RelayOptions, Sink, Transform, queue_chunk, write};
use crate::forward::filter::{BodyFilter, Filtered};
use crate::wire::OutVec;

/// Ends the filter at the end of a close-delimited body and queues what it held; `true`
/// when it queued a refusal page instead (the caller writes it, and nothing after it).
pub(super) fn finish(out: &mut OutVec, body: &mut Body) -> Result<bool, RelayError> {
    let encoder = body.encoder;
    let Transform::Filter(filter) = &mut body.transform else { return Ok(false) };
    let filtered = filter.push(&[], true);
    match queue_filtered(out, filter, filtered, encoder) {
        Ok(()) => Ok(false),
        Err(Some(page)) => {
            out.clear();
            out.push_extra(&page);
            Ok(true)
        }
        Err(None) => Err(RelayError::Filtered { page_sent: false }),
    }
}

/// Queues the held head (raw) and the released bytes (framed), or says the response was
/// refused, with its 403 page when nothing of it has gone.
pub(super) fn queue_filtered(
    out: &mut OutVec,
    filter: &mut BodyFilter,
    filtered: Filtered,
    encoder: super::Encoder,
) -> Result<(), Option<Vec<u8>>> {
    match filtered {
        Filtered::Pass { head } => {
            if let Some(head) = head {
                out.push_extra(&head);
            }
            let start = out.extra.len();
            out.extra.extend_from_slice(&filter.output);
            queue_chunk(out, encoder, start..out.extra.len(), true);
            Ok(())
        }
        Filtered::Denied { rule, page } => {
            log::debug!("response refused by body rule {rule:?}");
            Err(page)
        }
    }
}

/// Sends the refusal page when there is one, and stops the relay.
pub(super) async fn refuse(
    sink: &mut impl Sink,
    mut out: OutVec,
    page: Option<Vec<u8>>,
    options: &RelayOptions,
) -> (Result<(), RelayError>, OutVec) {
    let Some(page) = page else {
        return (Err(RelayError::Filtered { page_sent: false }), out);
    };
    out.clear();
    out.push_extra(&page);
    let (result, out) = write(sink, out, options.write_timeout).await;
    (result.and(Err(RelayError::Filtered { page_sent: true })), out)
}
