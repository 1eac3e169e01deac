//! The `ringway` command: `ringway --config FILE` runs the proxy, `ringway check FILE`
//! validates a file and exits, `ringway tune` inspects the host and recommends settings.
//! With no `--config`, the embedded default config runs.

use clap::{Parser, Subcommand};
use ringway::config::{Config, EMBEDDED_DEFAULT};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A thread-per-core HTTP/1.1 reverse proxy and load balancer on io_uring.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The TOML configuration to run. Without it, the embedded default
    /// (config/ringway.toml) runs.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validates FILE, lists every problem with its key, and exits non-zero when any.
    Check {
        /// The TOML configuration to check.
        file: PathBuf,
    },
    /// Inspects the host (cores, NUMA, limits, sysctls, io_uring) against the config and
    /// prints recommended settings with the reason for each.
    Tune {
        /// The TOML configuration to relate to the host; the embedded default without it.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print the host facts and findings as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Writes log lines to stderr: `LEVEL message`. `RINGWAY_LOG` sets the level
/// (error, warn, info, debug, trace; info by default).
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let _ = writeln!(std::io::stderr().lock(), "{:5} {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

fn init_logging() {
    let level = std::env::var("RINGWAY_LOG")
        .ok()
        .and_then(|text| text.parse::<log::LevelFilter>().ok())
        .unwrap_or(log::LevelFilter::Info);
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

fn read_config(path: Option<&PathBuf>) -> Result<String, String> {
    match path {
        None => Ok(EMBEDDED_DEFAULT.to_owned()),
        Some(path) => std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display())),
    }
}

/// `ringway tune`: reads the host, prints the findings. Exits 0 whatever it finds.
fn tune(path: Option<&PathBuf>, config: &Config, json: bool) -> ExitCode {
    let name = path.map_or("embedded default config".to_owned(), |path| path.display().to_string());
    let report = ringway::tune::Report::inspect(&name, config);
    let text = if json {
        match report.to_json() {
            Ok(text) => text + "\n",
            Err(error) => {
                log::error!("cannot render the report as JSON: {error}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        report.to_text()
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let (path, checking) = match &cli.command {
        Some(Command::Check { file }) => (Some(file), true),
        Some(Command::Tune { config, .. }) => (config.as_ref().or(cli.config.as_ref()), false),
        None => (cli.config.as_ref(), false),
    };
    let text = match read_config(path) {
        Ok(text) => text,
        Err(message) => {
            log::error!("{message}");
            return ExitCode::from(2);
        }
    };
    let config = match Config::parse(&text) {
        Ok(config) => config,
        Err(errors) => {
            let name = path.map_or("embedded config".to_owned(), |path| path.display().to_string());
            let _ = writeln!(std::io::stderr(), "{name}: {errors}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::Tune { json, .. }) = cli.command {
        return tune(path, &config, json);
    }
    if checking {
        let _ = writeln!(
            std::io::stdout(),
            "{}: configuration is valid",
            path.map_or_else(String::new, |path| path.display().to_string())
        );
        return ExitCode::SUCCESS;
    }
    match ringway::runtime::run(Arc::new(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            log::error!("cannot start: {error}");
            ExitCode::FAILURE
        }
    }
}
