//! The closed vocabularies of a policy.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A word that is not one of a vocabulary's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    /// What was given.
    pub given: String,
    /// The words that would have been accepted.
    pub expected: &'static [&'static str],
}

impl fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown value `{}` (expected one of: {})",
            self.given,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for UnknownValue {}

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every accepted spelling, in order.
            pub const WORDS: &'static [&'static str] = &[$($word),+];

            /// The spelling used in flags and config files.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(UnknownValue { given: s.to_string(), expected: Self::WORDS }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// The starting point of a policy. Variants are ordered from the most
    /// restrictive to the least, which is how narrowing is decided.
    Preset {
        /// Nothing of the host is writable; only a private temporary
        /// directory is.
        ReadOnly = "read-only",
        /// The workspace, extra writable roots and a private temporary
        /// directory are writable.
        WorkspaceWrite = "workspace-write",
        /// No sandbox at all; only when asked for explicitly.
        FullAccess = "full-access",
    }
}

vocabulary! {
    /// What the command may read. Ordered from the most restrictive.
    ReadMode {
        /// System directories, toolchains, the writable roots and listed
        /// paths only.
        Restricted = "restricted",
        /// Everything the person can read, minus denied paths.
        All = "all",
    }
}

vocabulary! {
    /// What the command may reach on the network. Ordered from the most
    /// restrictive.
    NetworkMode {
        /// No network: an empty network namespace with loopback only.
        Off = "off",
        /// Only the destinations the allowlist names, through moat's
        /// filtering proxy.
        Allow = "allow",
        /// The host's network.
        On = "on",
    }
}

/// Where a setting came from, so `moat policy show` can say it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// moat's built-in default.
    Default,
    /// The person's own config file.
    UserConfig(PathBuf),
    /// The workspace's `.moat/config.toml`.
    WorkspaceConfig(PathBuf),
    /// A command-line flag (its spelling).
    Flag(String),
    /// A program using the library API.
    Api,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::UserConfig(p) => write!(f, "user config {}", p.display()),
            Source::WorkspaceConfig(p) => write!(f, "workspace config {}", p.display()),
            Source::Flag(flag) => write!(f, "flag {}", flag),
            Source::Api => f.write_str("library call"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

impl<T> Sourced<T> {
    pub fn new(value: T, source: Source) -> Self {
        Sourced { value, source }
    }

    pub fn default_value(value: T) -> Self {
        Sourced {
            value,
            source: Source::Default,
        }
    }
}

/// Resource limits. `None` means no limit beyond the host's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time after which the whole run is killed.
    pub timeout: Option<Sourced<Duration>>,
    /// Most processes (and threads) alive at once inside the sandbox.
    pub processes: Option<Sourced<u64>>,
    /// Most memory, in bytes.
    pub memory: Option<Sourced<u64>>,
    /// Largest file the command may write, in bytes.
    pub file_size: Option<Sourced<u64>>,
    /// Most CPU time per unit of wall-clock time, in thousandths of a CPU.
    pub cpu: Option<Sourced<u64>>,
}

/// How the command's environment is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvPolicy {
    /// Start from an empty environment instead of the inherited one.
    pub clear: Sourced<bool>,
    /// Variables passed through from the host even if they look secret.
    pub pass: Vec<Sourced<String>>,
    /// Variables set to a value.
    pub set: Vec<Sourced<(String, String)>>,
}
