//! Request ids: 32 lowercase hex digits, unique within a process, made without a syscall.
//!
//! Layout: 8 digits of a random process prefix, 8 digits of worker id, 16 digits of a
//! per-worker counter starting at 1. The prefix comes from [`process_seed`], read once at
//! startup, so ids from two runs of the proxy differ too. The shape matches a W3C trace id.

use std::io::Read as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// The header a request id travels in unless the config names another.
pub const REQUEST_ID_HEADER: &str = "X-Request-Id";
/// Length of a generated request id.
pub const REQUEST_ID_LEN: usize = 32;
/// Longest request id accepted from a client; a longer one is replaced by a fresh id.
pub const REQUEST_ID_ACCEPTED_BYTES_MAX: usize = 128;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Makes the request ids of one worker.
#[derive(Debug, Clone)]
pub struct RequestIdGenerator {
    prefix: u32,
    worker: u32,
    /// INVARIANT: never 0 after the first id, so no id is all zeros (invalid as a trace id).
    counter: u64,
}

impl RequestIdGenerator {
    /// A generator for `worker`; every worker of a process passes the same `seed`
    /// (from [`process_seed`]), and distinct workers then never produce the same id.
    pub fn new(worker: usize, seed: u64) -> Self {
        let mixed = splitmix64(seed);
        RequestIdGenerator {
            prefix: u32::try_from(mixed >> 32).unwrap_or_default(),
            // More than 2^32 workers does not happen; saturating keeps this total.
            worker: u32::try_from(worker).unwrap_or(u32::MAX),
            counter: 0,
        }
    }

    /// Writes the next id into `out` and returns it: 32 ASCII bytes `[0-9a-f]`.
    pub fn next<'out>(&mut self, out: &'out mut [u8; REQUEST_ID_LEN]) -> &'out [u8] {
        // 2^64 ids per worker is centuries at any request rate, so wrapping never repeats.
        self.counter = self.counter.wrapping_add(1);
        put_hex(&mut out[0..8], u64::from(self.prefix));
        put_hex(&mut out[8..16], u64::from(self.worker));
        put_hex(&mut out[16..32], self.counter);
        &out[..]
    }
}

/// Whether a client's request id may be kept and forwarded: 1 to
/// [`REQUEST_ID_ACCEPTED_BYTES_MAX`] visible ASCII bytes (no spaces, no control bytes).
///
/// Anything else is replaced, so a header value cannot smuggle bytes into logs or
/// upstream requests.
pub fn is_acceptable_request_id(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= REQUEST_ID_ACCEPTED_BYTES_MAX
        && value.iter().all(|byte| (0x21..0x7f).contains(byte))
}

/// A seed for [`RequestIdGenerator::new`], read once per process from `/dev/urandom`, or
/// made from the time and pid where that file cannot be read (a bare container).
pub fn process_seed() -> u64 {
    let mut bytes = [0u8; 8];
    let random =
        std::fs::File::open("/dev/urandom").and_then(|mut file| file.read_exact(&mut bytes));
    if random.is_ok() {
        return u64::from_le_bytes(bytes);
    }
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let nanos = u64::try_from(since.as_nanos() & u128::from(u64::MAX)).unwrap_or_default();
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// Writes the low `4 * out.len()` bits of `value` as lowercase hex.
fn put_hex(out: &mut [u8], mut value: u64) {
    for slot in out.iter_mut().rev() {
        *slot = HEX[usize::try_from(value & 0xF).unwrap_or_default()];
        value >>= 4;
    }
}

/// SplitMix64's finaliser: spreads a weak seed (time ^ pid) over all 64 bits.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_have_the_documented_shape() {
        let mut generator = RequestIdGenerator::new(3, 0x1234);
        let mut out = [0u8; REQUEST_ID_LEN];
        let id = generator.next(&mut out).to_vec();
        assert_eq!(id.len(), 32);
        assert!(id.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)));
        assert_eq!(&id[8..16], b"00000003");
        assert_eq!(&id[16..], b"0000000000000001");
        let prefix = id[..8].to_vec();
        let second = generator.next(&mut out);
        assert_eq!(&second[..8], &prefix[..]);
        assert_eq!(&second[16..], b"0000000000000002");
        assert!(is_acceptable_request_id(second));
    }

    #[test]
    fn ids_are_unique_across_two_workers() {
        let seed = process_seed();
        let mut generators = [RequestIdGenerator::new(0, seed), RequestIdGenerator::new(1, seed)];
        let mut seen = HashSet::with_capacity(1_000_000);
        let mut out = [0u8; REQUEST_ID_LEN];
        for round in 0..500_000 {
            for generator in &mut generators {
                let id = generator.next(&mut out);
                assert!(seen.insert(<[u8; 32]>::try_from(id).unwrap()), "repeat at {round}");
            }
        }
        assert_eq!(seen.len(), 1_000_000);
    }

    #[test]
    fn seeds_differ_between_calls() {
        // /dev/urandom exists on every machine we run on; two equal reads mean a bug.
        assert_ne!(process_seed(), process_seed());
    }

    #[test]
    fn client_ids_are_screened() {
        assert!(is_acceptable_request_id(b"abc-123_XYZ.7"));
        assert!(!is_acceptable_request_id(b""));
        assert!(!is_acceptable_request_id(b"has space"));
        assert!(!is_acceptable_request_id(b"line\nbreak"));
        assert!(!is_acceptable_request_id("caf\u{e9}".as_bytes()));
        assert!(!is_acceptable_request_id(&[b'a'; 129]));
        assert!(is_acceptable_request_id(&[b'a'; 128]));
    }
}
