//! The command line: `sluice [run]` and `sluice check-config FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use sluice_config::{keys, Config, ConfigErrors, Loader, EXIT_BAD_CONFIG};

const ABOUT: &str = "A transparent Kafka protocol proxy for a broker's client port.

Sluice runs as a sidecar: the broker moves its client listener to an internal port (by default
127.0.0.1:19093) and keeps advertising host:9093; Sluice listens on 9093 and forwards every byte,
unchanged and in order, to the broker.";

const AFTER_HELP: &str =
    "Configuration: defaults < TOML file (--config) < SLUICE_* environment < flags.
Every key, its environment variable and its default:
";

const EXAMPLES: &str = "
Examples:
  sluice --upstream 127.0.0.1:19093             # sidecar on 0.0.0.0:9093 in front of a local broker
  sluice --config /etc/sluice.toml --log-format json
  sluice check-config /etc/sluice.toml          # validate (and print the effective config)

A bad configuration is reported in full (every bad key, with where it came from) before any port
is bound, and exits with code 64.";

/// `sluice --version`: the release and the commit it was built from.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("SLUICE_COMMIT"), ")");

/// Top-level command line.
#[derive(Debug, Parser)]
#[command(name = "sluice", version = VERSION, about = ABOUT, after_help = after_help(),
    args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy (what bare `sluice` does).
    #[command(after_help = after_help())]
    Run(Box<RunArgs>),
    /// Validate a config file (plus SLUICE_* environment) without binding anything; prints the
    /// effective configuration on success, secrets (admin.token, OTLP header values, an OTLP
    /// endpoint's password) redacted.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Live view of a running Sluice: active findings and the clients pulling the most bytes.
    Top {
        /// The admin API of the Sluice to watch.
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:9464")]
        admin: String,
        /// Time between refreshes, e.g. 1s or 500ms.
        #[arg(long, value_name = "DURATION", default_value = "1s")]
        interval: String,
        /// Print one frame and exit.
        #[arg(long)]
        once: bool,
        /// Stop after this long (default: until Ctrl-C).
        #[arg(long, value_name = "DURATION")]
        duration: Option<String>,
        /// File holding the admin.token of that Sluice (default: the SLUICE_ADMIN_TOKEN
        /// environment variable, if set).
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
    },
}

/// Flags of `sluice run`. Each overrides the config file and the environment.
#[derive(Debug, Args, Default)]
struct RunArgs {
    /// TOML config file.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on for Kafka clients [default: 0.0.0.0:9093].
    #[arg(long, value_name = "IP:PORT")]
    listen: Option<String>,
    /// Broker listener to forward to [default: 127.0.0.1:19093].
    #[arg(long, value_name = "HOST:PORT")]
    upstream: Option<String>,
    /// Admin HTTP listener (/healthz, /readyz, /api/v1/stats) [default: 127.0.0.1:9464].
    #[arg(long, value_name = "IP:PORT")]
    admin_listen: Option<String>,
    /// Most client connections at once [default: 20000].
    #[arg(long, value_name = "N")]
    max_connections: Option<String>,
    /// Largest copy buffer per direction of a connection, e.g. 256KiB [default: 256KiB].
    #[arg(long, value_name = "SIZE")]
    buffer_size: Option<String>,
    /// Time allowed to connect to the broker [default: 5s].
    #[arg(long, value_name = "DURATION")]
    connect_timeout: Option<String>,
    /// Time for in-flight requests to finish on shutdown [default: 30s].
    #[arg(long, value_name = "DURATION")]
    shutdown_grace: Option<String>,
    /// Log output: plain or json [default: plain].
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Log filter, e.g. info or info,sluice=debug [default: info].
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
}

fn after_help() -> String {
    format!("{AFTER_HELP}{}{EXAMPLES}", keys::reference())
}

impl RunArgs {
    fn loader(&self) -> Loader {
        let mut loader = Loader::new().env(std::env::vars());
        if let Some(file) = &self.config {
            loader = loader.file(file);
        }
        let flags = [
            ("listen", "--listen", &self.listen),
            ("upstream", "--upstream", &self.upstream),
            ("admin.listen", "--admin-listen", &self.admin_listen),
            (
                "max_connections",
                "--max-connections",
                &self.max_connections,
            ),
            (
                "connect_timeout",
                "--connect-timeout",
                &self.connect_timeout,
            ),
            ("shutdown_grace", "--shutdown-grace", &self.shutdown_grace),
            ("log.format", "--log-format", &self.log_format),
            ("log.level", "--log-level", &self.log_level),
        ];
        for (path, flag, value) in flags {
            if let Some(v) = value {
                loader = loader.flag(path, flag, v.clone());
            }
        }
        loader
    }
}

/// Parses the command line and runs it. Exit codes: 0 success, 64 bad configuration,
/// 1 failure to start (e.g. a port already in use), 2 bad command-line syntax.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { file }) => check_config(file),
        Some(Command::Top {
            admin,
            interval,
            once,
            duration,
            token_file,
        }) => top(&admin, &interval, once, duration.as_deref(), token_file),
        Some(Command::Run(args)) => run(*args),
        None => run(cli.run),
    }
}

fn report_config(errors: &ConfigErrors) -> ExitCode {
    eprint!("sluice: {errors}");
    ExitCode::from(EXIT_BAD_CONFIG as u8)
}

fn check_config(file: PathBuf) -> ExitCode {
    match Loader::new().env(std::env::vars()).file(&file).load() {
        Ok(config) => {
            println!(
                "# {}: configuration is valid; effective values (secrets shown as \"{}\"):",
                file.display(),
                sluice_config::REDACTED
            );
            print!("{}", config.to_toml());
            if let Some(file) = &config.throttle.policy_file {
                let n = config.throttle.policies.len();
                println!(
                    "\n# throttle policies from {} ({n} valid polic{}):",
                    file.display(),
                    if n == 1 { "y" } else { "ies" }
                );
                print!(
                    "{}",
                    sluice_config::policy_file::to_toml(&config.throttle.policies)
                );
            }
            ExitCode::SUCCESS
        }
        Err(errors) => report_config(&errors),
    }
}

fn run(args: RunArgs) -> ExitCode {
    let config: Config = match args.loader().load() {
        Ok(c) => c,
        Err(errors) => return report_config(&errors),
    };
    crate::logging::init(&config.log);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if config.worker_threads > 0 {
        builder.worker_threads(config.worker_threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(crate::error::StartError::Runtime(e)),
    };
    let args = std::sync::Arc::new(args);
    let reread: crate::reload::Reread = std::sync::Arc::new(move || args.loader().load());
    let result = runtime.block_on(async {
        let shutdown = crate::app::shutdown_signal()?;
        crate::app::serve_rereading(config, Some(reread), shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn top(
    admin: &str,
    interval: &str,
    once: bool,
    duration: Option<&str>,
    token_file: Option<PathBuf>,
) -> ExitCode {
    let bad = |what: &str, v: &str| {
        eprintln!("sluice top: {what} `{v}` is not valid");
        ExitCode::from(EXIT_BAD_CONFIG as u8)
    };
    let Ok(admin) = admin.parse() else {
        return bad("--admin", admin);
    };
    let Ok(interval) = humantime::parse_duration(interval) else {
        return bad("--interval", interval);
    };
    let duration = match duration.map(humantime::parse_duration) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => return bad("--duration", duration.unwrap_or_default()),
    };
    let token = match token_file {
        Some(file) => match std::fs::read_to_string(&file) {
            Ok(t) => Some(t.trim().to_owned()),
            Err(e) => {
                eprintln!(
                    "sluice top: cannot read --token-file {}: {e}",
                    file.display()
                );
                return ExitCode::from(EXIT_BAD_CONFIG as u8);
            }
        },
        None => std::env::var("SLUICE_ADMIN_TOKEN").ok(),
    };
    let admin = crate::top::Admin {
        addr: admin,
        token: token.filter(|t| !t.trim().is_empty()),
    };
    match crate::top::run(&admin, interval, once, duration) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice top: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fail(e: crate::error::StartError) -> ExitCode {
    tracing::error!(side = %e.side(), error = %e, "cannot start");
    eprintln!("sluice: {e}");
    ExitCode::FAILURE
}
