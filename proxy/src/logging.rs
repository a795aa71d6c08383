//! Log output: tracing-subscriber, plain or JSON, filtered by `log.level`.

use std::io::IsTerminal;

use sluice_config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Logs go to stderr; stdout stays for command output.
pub fn init(config: &LogConfig) {
    // The level was validated with the config; fall back to `info` only if that changes.
    let filter = EnvFilter::try_new(&config.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match config.format {
        LogFormat::Plain => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    if result.is_err() {
        // A subscriber is already installed (tests, embedding): keep it.
    }
}
