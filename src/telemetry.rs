use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{LogConfig, LogFormat};

/// Installs the global tracing subscriber. `RUST_LOG`, when set, overrides the configured level.
pub fn init(config: &LogConfig) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.level));
    let builder = fmt()
        .with_env_filter(filter)
        .with_target(true)
        // Colour codes only for a person at a terminal, never into files or collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    // try_init: a second call (tests, embedding) keeps the first subscriber instead of panicking.
    let _ = match config.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
