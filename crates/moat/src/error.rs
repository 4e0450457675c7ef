use std::path::PathBuf;

/// Why a command could not be run under its policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{0}")]
    Config(#[from] moat_config::ConfigError),
    #[error("{0}")]
    Policy(#[from] moat_policy::PolicyError),
    #[error("{0}")]
    View(#[from] moat_policy::view::ViewError),
    #[cfg(target_os = "linux")]
    #[error("{0}")]
    Sandbox(#[from] moat_linux::Error),
    #[cfg(target_os = "linux")]
    #[error("{0}")]
    Placeholder(#[from] moat_linux::placeholders::PlaceholderError),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Spawn(std::io::Error),
    #[error("moat has no sandbox for this operating system yet")]
    Unsupported,
}
