//! The `ringway` command: `ringway --config FILE` runs the proxy, `ringway check FILE`
//! validates a file and exits, `ringway tune` inspects the host and recommends settings,
//! and `status`, `backend` and `top` act on a running proxy through its admin API. With no
//! `--config`, the embedded default config runs (and is where the verbs look for the admin
//! API).

use clap::{Parser, Subcommand, ValueEnum};
use ringway::cli::{self, BackendAction};
use ringway::config::{Config, EMBEDDED_DEFAULT};
use std::io::Write;
use std::net::SocketAddr;
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
    /// Shows workers, listeners, clusters and backends (health, state, in flight, error
    /// rates) of the running proxy, from its admin API.
    Status {
        #[command(flatten)]
        admin: AdminFlags,
    },
    /// Drains, enables or disables a backend on every worker of the running proxy.
    Backend {
        action: Action,
        /// The cluster's name, as in the config.
        cluster: String,
        /// The backend's address, as written in the config.
        backend: String,
        #[command(flatten)]
        admin: AdminFlags,
    },
    /// Reloads the running proxy's config file, TLS certificates included (as SIGHUP
    /// does); all or nothing, every problem printed.
    Reload {
        #[command(flatten)]
        admin: AdminFlags,
    },
    /// The status view with requests per second, refreshed every second.
    Top {
        /// Stop after this many refreshes (default: until interrupted).
        #[arg(short = 'n', long)]
        count: Option<u64>,
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        #[command(flatten)]
        admin: AdminFlags,
    },
}

/// Where a verb finds the admin API, when not from the config's `[admin]`.
#[derive(Debug, clap::Args)]
struct AdminFlags {
    /// The admin API's address (default: `[admin] addr` of --config).
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// The bearer token (default: the RINGWAY_ADMIN_TOKEN variable, then `[admin] token`
    /// of --config). The variable keeps the token out of the process list.
    #[arg(long)]
    token: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Action {
    /// No new requests; in-flight ones finish.
    Drain,
    /// Back in rotation.
    Enable,
    /// Out of rotation.
    Disable,
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

impl Command {
    /// True for the verbs that act on a running proxy.
    fn is_verb(&self) -> bool {
        matches!(
            self,
            Self::Status { .. } | Self::Backend { .. } | Self::Reload { .. } | Self::Top { .. }
        )
    }
}

/// Runs a verb against the admin API that `config` (or the flags) names.
fn verb(command: &Command, config: &Config) -> ExitCode {
    let (Command::Status { admin }
    | Command::Backend { admin, .. }
    | Command::Reload { admin }
    | Command::Top { admin, .. }) = command
    else {
        unreachable!("only verbs come here")
    };
    let mut out = std::io::stdout().lock();
    let token = admin.token.clone().or_else(|| std::env::var("RINGWAY_ADMIN_TOKEN").ok());
    let result = cli::admin_api(config, admin.admin, token).and_then(|api| match command {
        Command::Status { .. } => cli::status(&api, &mut out),
        Command::Backend { action, cluster, backend, .. } => {
            let action = match action {
                Action::Drain => BackendAction::Drain,
                Action::Enable => BackendAction::Enable,
                Action::Disable => BackendAction::Disable,
            };
            cli::backend(&api, action, cluster, backend, &mut out)
        }
        Command::Reload { .. } => cli::reload(&api, &mut out),
        Command::Top { count, interval, .. } => {
            let interval = std::time::Duration::from_secs_f64(interval.clamp(0.1, 3600.0));
            cli::top(&api, interval, *count, &mut out)
        }
        Command::Check { .. } | Command::Tune { .. } => unreachable!("not a verb"),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "ringway: {message}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    ringway::logging::init();
    let cli = Cli::parse();
    let (path, checking) = match &cli.command {
        Some(Command::Check { file }) => (Some(file), true),
        Some(Command::Tune { config, .. }) => (config.as_ref().or(cli.config.as_ref()), false),
        Some(
            Command::Status { .. }
            | Command::Backend { .. }
            | Command::Reload { .. }
            | Command::Top { .. },
        )
        | None => (cli.config.as_ref(), false),
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
    ringway::logging::configure(&config.log);
    if let Some(Command::Tune { json, .. }) = cli.command {
        return tune(path, &config, json);
    }
    if let Some(command) = cli.command.as_ref().filter(|command| command.is_verb()) {
        return verb(command, &config);
    }
    if checking {
        let _ = writeln!(
            std::io::stdout(),
            "{}: configuration is valid",
            path.map_or_else(String::new, |path| path.display().to_string())
        );
        return ExitCode::SUCCESS;
    }
    let source = path.map(|path| ringway::runtime::ConfigFile {
        path: path.clone(),
        hash: ringway::reload::file_hash(&text),
    });
    match ringway::runtime::run(Arc::new(config), source) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            log::error!("cannot start: {error}");
            ExitCode::FAILURE
        }
    }
}
