use std::path::PathBuf;

/// Why a command could not be run under its policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Config(#[from] moat_config::ConfigError),
    #[error(transparent)]
    Policy(#[from] moat_policy::PolicyError),
    #[error(transparent)]
    View(#[from] moat_policy::view::ViewError),
    #[cfg(target_os = "linux")]
    #[error(transparent)]
    Sandbox(#[from] moat_linux::Error),
    #[cfg(target_os = "linux")]
    #[error(transparent)]
    Placeholder(#[from] moat_linux::placeholders::PlaceholderError),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Spawn(std::io::Error),
    #[error("{0}")]
    Tier(String),
    /// A secret or request rule that cannot be honoured.
    #[error("{0}")]
    Secrets(String),
    #[error("moat has no sandbox for this operating system yet")]
    Unsupported,
}
