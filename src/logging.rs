//! The proxy's own log lines (start, stop, warnings, errors), as operators expect them:
//! a UTC timestamp and the level on every line, one JSON object a line with `[log]
//! format = "json"`, and, under systemd, journald's priority prefixes instead of a time
//! (journald keeps the level and stamps the line itself). Access logs are `access_log/`.
//!
//! The logger starts before the config is read (so config errors are logged), in the text
//! format; [`configure`] then applies `[log]`. `RINGWAY_LOG` overrides the level.

use crate::access_log::time::{Civil, split_unix};
use crate::config::{LogConfig, LogFormat};
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::SystemTime;

/// How lines are written now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Text,
    Json,
    /// Text on a journald stream: `<N>` priority prefix, no time.
    Journald,
}

impl Style {
    fn of(format: LogFormat, journald: bool) -> Self {
        match (format, journald) {
            (LogFormat::Json, _) => Self::Json,
            (LogFormat::Text, true) => Self::Journald,
            (LogFormat::Text, false) => Self::Text,
        }
    }
}

struct Logger {
    style: AtomicU8,
}

static LOGGER: Logger = Logger { style: AtomicU8::new(Style::Text as u8) };

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let style = match self.style.load(Ordering::Relaxed) {
            1 => Style::Json,
            2 => Style::Journald,
            _ => Style::Text,
        };
        let message = record.args().to_string();
        let line = render(style, SystemTime::now(), record.level(), record.target(), &message);
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the logger, in the text format, at `RINGWAY_LOG`'s level or info.
pub fn init() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(env_level().unwrap_or(log::LevelFilter::Info));
}

/// Applies `[log]`: its format, and its level unless `RINGWAY_LOG` names one.
pub fn configure(config: &LogConfig) {
    let style = Style::of(config.format, on_journald());
    LOGGER.style.store(style as u8, Ordering::Relaxed);
    log::set_max_level(env_level().unwrap_or(config.level));
}

fn env_level() -> Option<log::LevelFilter> {
    std::env::var("RINGWAY_LOG").ok().and_then(|text| text.parse().ok())
}

/// True when standard error is the journald stream systemd gave this service: the
/// `JOURNAL_STREAM` variable names its device and inode (`DEV:INODE`).
fn on_journald() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else { return false };
    let Ok(stderr) = std::fs::metadata("/proc/self/fd/2") else { return false };
    stream == format!("{}:{}", stderr.dev(), stderr.ino())
}

/// One log line, newline included.
fn render(
    style: Style,
    time: SystemTime,
    level: log::Level,
    target: &str,
    message: &str,
) -> String {
    match style {
        Style::Journald => {
            // sd-daemon(3) priorities: err 3, warning 4, info 6, debug 7.
            let priority = match level {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            format!("<{priority}>{message}\n")
        }
        Style::Text => format!("{} {level:5} {message}\n", timestamp(time)),
        Style::Json => {
            let line = serde_json::json!({
                "time": timestamp(time),
                "level": level.as_str().to_ascii_lowercase(),
                "target": target,
                "message": message,
            });
            format!("{line}\n")
        }
    }
}

/// `2026-12-03T17:40:01.123Z`.
fn timestamp(time: SystemTime) -> String {
    let (secs, millis) = split_unix(time);
    let civil = Civil::from_unix(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        civil.year, civil.month, civil.day, civil.hour, civil.minute, civil.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at() -> SystemTime {
        // 2026-12-03T17:40:01.123Z
        UNIX_EPOCH + Duration::from_millis(1_796_319_601_123)
    }

    #[test]
    fn text_lines_carry_time_and_level() {
        let line = render(Style::Text, at(), log::Level::Warn, "ringway::proxy", "a backend left");
        assert_eq!(line, "2026-12-03T17:40:01.123Z WARN  a backend left\n");
    }

    #[test]
    fn journald_lines_carry_a_priority_and_no_time() {
        let line = render(Style::Journald, at(), log::Level::Error, "ringway", "cannot start");
        assert_eq!(line, "<3>cannot start\n");
        assert!(render(Style::Journald, at(), log::Level::Info, "", "x").starts_with("<6>"));
    }

    #[test]
    fn json_lines_are_one_object_and_escape_the_message() {
        let line =
            render(Style::Json, at(), log::Level::Info, "ringway::runtime", "a \"quoted\"\nline");
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        let value: serde_json::Value = serde_json::from_str(&line).expect("one JSON object");
        assert_eq!(value["time"], "2026-12-03T17:40:01.123Z");
        assert_eq!(value["level"], "info");
        assert_eq!(value["target"], "ringway::runtime");
        assert_eq!(value["message"], "a \"quoted\"\nline");
    }

    #[test]
    fn the_format_and_journald_choose_the_style() {
        assert_eq!(Style::of(LogFormat::Text, false), Style::Text);
        assert_eq!(Style::of(LogFormat::Text, true), Style::Journald);
        assert_eq!(Style::of(LogFormat::Json, true), Style::Json);
    }
}
