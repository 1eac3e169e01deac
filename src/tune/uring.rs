//! Probes io_uring for `ringway tune`: sets up a small ring, reads its feature flags, asks
//! the kernel which opcodes it supports, and tries an SQPOLL ring.
//!
//! Hands on [`UringFacts`]; a ring that cannot be set up is a fact to report, not an error.

use io_uring::{IoUring, Probe, opcode, squeue};
use serde::Serialize;

/// Entries of the probe rings: the smallest useful size.
const PROBE_ENTRIES: u32 = 8;
/// SQPOLL idle time of the test ring, in milliseconds.
const SQPOLL_IDLE_MS: u32 = 1000;

/// Opcodes the runtime needs: monoio checks for exactly these (`detect_uring`) and falls
/// back to epoll when one is missing.
pub const OPCODES_REQUIRED: &[(&str, u8)] = &[
    ("accept", opcode::Accept::CODE),
    ("async_cancel", opcode::AsyncCancel::CODE),
    ("close", opcode::Close::CODE),
    ("connect", opcode::Connect::CODE),
    ("fsync", opcode::Fsync::CODE),
    ("openat", opcode::OpenAt::CODE),
    ("poll_add", opcode::PollAdd::CODE),
    ("provide_buffers", opcode::ProvideBuffers::CODE),
    ("read", opcode::Read::CODE),
    ("readv", opcode::Readv::CODE),
    ("recv", opcode::Recv::CODE),
    ("recvmsg", opcode::RecvMsg::CODE),
    ("send", opcode::Send::CODE),
    ("sendmsg", opcode::SendMsg::CODE),
    ("timeout", opcode::Timeout::CODE),
    ("write", opcode::Write::CODE),
    ("writev", opcode::Writev::CODE),
];

/// Opcodes ringway does not use today but that a proxy could: reported for planning.
pub const OPCODES_OPTIONAL: &[(&str, u8)] = &[
    ("splice", opcode::Splice::CODE),
    ("shutdown", opcode::Shutdown::CODE),
    ("socket", opcode::Socket::CODE),
    ("send_zc", opcode::SendZc::CODE),
    ("sendmsg_zc", opcode::SendMsgZc::CODE),
];

/// What the kernel's io_uring offers this process.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UringFacts {
    /// Why a ring could not be set up (seccomp, `io_uring_disabled`, memlock); `None`
    /// when it could.
    pub setup_error: Option<String>,
    /// `IORING_FEAT_*` flags the kernel reported, lowercase without the prefix.
    pub features: Vec<&'static str>,
    pub features_missing: Vec<&'static str>,
    /// Checked opcodes the kernel supports, from both lists above.
    pub opcodes: Vec<&'static str>,
    /// Checked opcodes it lacks. Empty with `probe_error` set when it could not be asked.
    pub opcodes_missing: Vec<&'static str>,
    /// Why `IORING_REGISTER_PROBE` failed (kernels before 5.6).
    pub probe_error: Option<String>,
    /// Why an SQPOLL ring could not be set up; `None` when it could.
    pub sqpoll_error: Option<String>,
}

impl UringFacts {
    /// Whether a ring could be set up at all.
    pub fn is_available(&self) -> bool {
        self.setup_error.is_none()
    }
}

/// Sets up the probe rings and reads what they report.
pub(super) fn probe() -> UringFacts {
    let ring = match IoUring::new(PROBE_ENTRIES) {
        Ok(ring) => ring,
        Err(error) => {
            return UringFacts { setup_error: Some(error.to_string()), ..Default::default() };
        }
    };
    let params = ring.params();
    let flags = [
        ("single_mmap", params.is_feature_single_mmap()),
        ("nodrop", params.is_feature_nodrop()),
        ("submit_stable", params.is_feature_submit_stable()),
        ("rw_cur_pos", params.is_feature_rw_cur_pos()),
        ("cur_personality", params.is_feature_cur_personality()),
        ("fast_poll", params.is_feature_fast_poll()),
        ("poll_32bits", params.is_feature_poll_32bits()),
        ("sqpoll_nonfixed", params.is_feature_sqpoll_nonfixed()),
        ("ext_arg", params.is_feature_ext_arg()),
        ("native_workers", params.is_feature_native_workers()),
        ("resource_tagging", params.is_feature_resource_tagging()),
        ("skip_cqe_on_success", params.is_feature_skip_cqe_on_success()),
        ("linked_file", params.is_feature_linked_file()),
    ];
    let mut facts = UringFacts::default();
    for (name, present) in flags {
        if present { facts.features.push(name) } else { facts.features_missing.push(name) }
    }
    let mut kernel_probe = Probe::new();
    match ring.submitter().register_probe(&mut kernel_probe) {
        Ok(()) => {
            for &(name, code) in OPCODES_REQUIRED.iter().chain(OPCODES_OPTIONAL) {
                let list = if kernel_probe.is_supported(code) {
                    &mut facts.opcodes
                } else {
                    &mut facts.opcodes_missing
                };
                list.push(name);
            }
        }
        Err(error) => facts.probe_error = Some(error.to_string()),
    }
    let sqpoll =
        IoUring::<squeue::Entry>::builder().setup_sqpoll(SQPOLL_IDLE_MS).build(PROBE_ENTRIES);
    facts.sqpoll_error = sqpoll.err().map(|error| error.to_string());
    facts
}
