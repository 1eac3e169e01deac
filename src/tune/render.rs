//! Renders a [`Report`] as plain text: a header, then each section with one aligned block
//! per finding (level, topic, found, set, why), wrapped to fit a terminal.

use super::{Level, Report, Section, cpus_text, or_unknown};
use std::fmt::Write;

/// Lines are wrapped to this many characters.
const WIDTH: usize = 96;
/// Where the text of a `found`, `set` or `why` line starts.
const TEXT_COLUMN: usize = 15;

pub(super) fn text(report: &Report) -> String {
    let mut out = String::new();
    let host = &report.host;
    let count = |level| report.findings.iter().filter(|finding| finding.level == level).count();
    let _ = writeln!(out, "ringway tune: {}", report.config);
    let _ = writeln!(
        out,
        "host: Linux {}, CPUs {} usable of {} online, {} NUMA node(s)",
        or_unknown(host.kernel_release.as_deref()),
        cpus_text(&host.cpus_allowed),
        cpus_text(&host.cpus_online),
        host.numa_nodes.len().max(1),
    );
    let _ = writeln!(
        out,
        "summary: {} OK, {} ADVISE, {} WARN",
        count(Level::Ok),
        count(Level::Advise),
        count(Level::Warn)
    );
    for section in Section::ALL {
        let findings: Vec<_> =
            report.findings.iter().filter(|finding| finding.section == section).collect();
        if findings.is_empty() {
            continue;
        }
        let _ = write!(out, "\n== {} ==\n", section.as_str());
        for finding in findings {
            let _ = write!(out, "\n{:<8}{}\n", finding.level.as_str(), finding.topic);
            field(&mut out, "found", &finding.found);
            for (index, line) in finding.set.iter().enumerate() {
                // Commands are not wrapped: they must stay copyable.
                let label = if index == 0 { "set" } else { "" };
                let _ = writeln!(out, "{:8}{label:<7}{line}", "");
            }
            field(&mut out, "why", &finding.why);
        }
    }
    out
}

/// One labelled field, wrapped at [`WIDTH`] with continuation lines under the text.
fn field(out: &mut String, label: &str, text: &str) {
    let mut line = format!("{:8}{label:<7}", "");
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.len() + 1 + word.len() > WIDTH {
            let _ = writeln!(out, "{line}");
            line = " ".repeat(TEXT_COLUMN);
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    let _ = writeln!(out, "{line}");
}
