//! Compression counters per route: responses coded and their bytes before and after, per
//! coding; responses skipped, per reason; coders that failed. Rendered for `/metrics`
//! and the dashboard's JSON.

use super::worker::slot;
use super::{StatsLayout, WorkerStats};
use crate::compress::SkipReason;
use crate::config::{Encoding, RouteId};
use serde::Serialize;

/// The codings counted, in counter order: the three encoders, then the gzip decoder.
pub(super) const CODINGS: [&str; 4] = ["zstd", "br", "gzip", "gunzip"];

/// The counters of one route.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(super) struct CompressionCounts {
    /// Per [`CODINGS`] entry.
    pub(super) coded: [CodedCounts; 4],
    /// Per [`SkipReason::ALL`] entry.
    pub(super) skipped: [u64; SkipReason::ALL.len()],
    /// Coders that failed mid-body (the response was cut short).
    pub(super) errors: u64,
}

/// Responses one coding handled, and their bytes.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(super) struct CodedCounts {
    pub(super) responses: u64,
    /// Body bytes from the backend.
    pub(super) bytes_in: u64,
    /// Body bytes to the client, before chunk framing.
    pub(super) bytes_out: u64,
}

impl CompressionCounts {
    pub(super) fn add(&mut self, other: &Self) {
        for (into, from) in self.coded.iter_mut().zip(&other.coded) {
            into.responses += from.responses;
            into.bytes_in += from.bytes_in;
            into.bytes_out += from.bytes_out;
        }
        for (into, from) in self.skipped.iter_mut().zip(other.skipped) {
            *into += from;
        }
        self.errors += other.errors;
    }
}

fn coding_index(encoding: Option<Encoding>) -> usize {
    match encoding {
        Some(Encoding::Zstd) => 0,
        Some(Encoding::Br) => 1,
        Some(Encoding::Gzip) => 2,
        None => 3,
    }
}

impl WorkerStats {
    /// A response on `route` went as it came, for `reason`.
    pub fn compression_skipped(&mut self, route: RouteId, reason: SkipReason) {
        if let Some(stats) = slot(&mut self.routes, route.index()) {
            stats.compression.skipped[reason.index()] += 1;
        }
    }

    /// A coded response on `route` ended: `encoding` (`None`: gzip decoded), its body bytes
    /// `(in, out)`, and whether its coder failed.
    pub fn compression_done(
        &mut self,
        route: RouteId,
        encoding: Option<Encoding>,
        (bytes_in, bytes_out): (u64, u64),
        failed: bool,
    ) {
        if let Some(stats) = slot(&mut self.routes, route.index()) {
            let counts = &mut stats.compression.coded[coding_index(encoding)];
            counts.responses += 1;
            counts.bytes_in += bytes_in;
            counts.bytes_out += bytes_out;
            stats.compression.errors += u64::from(failed);
        }
    }
}

/// Writes the compression families of `total` in Prometheus text format.
pub(super) fn render_prometheus(
    layout: &StatsLayout,
    total: &WorkerStats,
    (family, sample): (FamilyFn, SampleFn),
    out: &mut String,
) {
    let routes = || layout.routes.iter().zip(&total.routes);
    let per_coding: [(&str, &str, CountFn); 3] = [
        (
            "ringway_compression_responses_total",
            "Responses coded per route and coding.",
            |counts| counts.responses,
        ),
        (
            "ringway_compression_input_bytes_total",
            "Body bytes from backends into coders, per route and coding.",
            |counts| counts.bytes_in,
        ),
        (
            "ringway_compression_output_bytes_total",
            "Body bytes out of coders to clients, per route and coding.",
            |counts| counts.bytes_out,
        ),
    ];
    for (name, help, value) in per_coding {
        family(out, name, "counter", help);
        for (label, stats) in routes() {
            for (coding, counts) in CODINGS.iter().zip(&stats.compression.coded) {
                let labels = [("route", label.name.as_str()), ("coding", coding)];
                sample(out, name, &labels, value(counts));
            }
        }
    }
    let name = "ringway_compression_skipped_total";
    family(out, name, "counter", "Responses of compressing routes sent as they came, by reason.");
    for (label, stats) in routes() {
        for reason in SkipReason::ALL {
            let labels = [("route", label.name.as_str()), ("reason", reason.as_str())];
            sample(out, name, &labels, stats.compression.skipped[reason.index()]);
        }
    }
    let name = "ringway_compression_errors_total";
    family(out, name, "counter", "Responses cut short because their coder failed.");
    for (label, stats) in routes() {
        sample(out, name, &[("route", label.name.as_str())], stats.compression.errors);
    }
}

/// The dashboard's view of one route's counters (the COMPRESSION object of `/stats`).
pub(super) fn to_json(counts: &CompressionCounts) -> serde_json::Value {
    let coded: serde_json::Map<String, serde_json::Value> = CODINGS
        .iter()
        .zip(&counts.coded)
        .map(|(coding, counts)| ((*coding).to_owned(), serde_json::json!(counts)))
        .collect();
    let skipped: serde_json::Map<String, serde_json::Value> = SkipReason::ALL
        .iter()
        .map(|reason| (reason.as_str().to_owned(), counts.skipped[reason.index()].into()))
        .collect();
    serde_json::json!({ "coded": coded, "skipped": skipped, "errors": counts.errors })
}

/// Reads one count of a coding.
type CountFn = fn(&CodedCounts) -> u64;

/// Writes a family's HELP and TYPE lines.
pub(super) type FamilyFn = fn(&mut String, &str, &str, &str);
/// Writes one sample line.
pub(super) type SampleFn = fn(&mut String, &str, &[(&str, &str)], u64);
