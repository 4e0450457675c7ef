//! The one error type of the crate: each variant names the step that failed
//! and carries what is needed to fix it (a file, an environment variable, a
//! host). No message ever contains a secret's real value.

use std::io;
use std::path::PathBuf;

/// Why the broker, its authority or a placeholder could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value has too few characters that can be randomised (digits and
    /// ASCII letters) to make a placeholder nobody could guess or confuse.
    #[error(
        "secret value too short for a placeholder: {randomisable} random characters, need at least {needed}"
    )]
    ValueTooShort {
        /// How many characters of the value could be randomised.
        randomisable: usize,
        /// The minimum.
        needed: usize,
    },
    /// As [`Error::ValueTooShort`], for a named secret.
    #[error(
        "secret {env}: value too short for a placeholder (at least 8 letters or digits are needed)"
    )]
    SecretTooShort {
        /// The secret's environment variable.
        env: String,
    },
    /// A secret's value holds a byte that cannot go into an HTTP header.
    #[error("secret {env}: the value contains {what}, which cannot be sent in an HTTP header")]
    SecretNotAHeaderValue {
        /// The secret's environment variable.
        env: String,
        /// What was found (never the value itself).
        what: &'static str,
    },
    /// A secret's environment variable name is empty or not a shell name.
    #[error("secret {env:?}: not a valid environment variable name")]
    BadSecretName {
        /// The name given.
        env: String,
    },
    /// Two secrets share one environment variable.
    #[error("secret {env} is given twice")]
    DuplicateSecret {
        /// The repeated name.
        env: String,
    },
    /// A secret bound to no host could never be used.
    #[error("secret {env} is bound to no host; hint: name the hosts that may receive it")]
    SecretWithoutHosts {
        /// The secret's environment variable.
        env: String,
    },
    /// A host name is neither a DNS name nor an IP address.
    #[error("{host:?} is not a valid host name or IP address")]
    BadHost {
        /// The name given.
        host: String,
    },
    /// A request rule is malformed.
    #[error("request rule for {host}: {reason}")]
    BadRule {
        /// The rule's host.
        host: String,
        /// What is wrong.
        reason: String,
    },
    /// Neither a secret nor a rule: there is nothing to broker.
    #[error("nothing to broker: no secrets and no request rules")]
    NothingToBroker,
    /// The authority was asked for no host at all.
    #[error("a certificate authority needs at least one host to be constrained to")]
    NoHosts,
    /// The authority was asked for a leaf outside its name constraints.
    #[error("the per-run certificate authority does not cover {host}")]
    HostNotCovered {
        /// The host asked for.
        host: String,
    },
    /// The system random generator failed.
    #[error("the system random generator failed")]
    Random,
    /// rcgen could not make the authority's certificate.
    #[error("generating the per-run certificate authority failed: {0}")]
    AuthorityGeneration(#[source] rcgen::Error),
    /// rcgen could not make a leaf certificate.
    #[error("issuing a certificate for {host} failed: {source}")]
    LeafGeneration {
        /// The host of the leaf.
        host: String,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },
    /// rustls refused a configuration or key.
    #[error("setting up TLS failed: {0}")]
    Tls(#[from] rustls::Error),
    /// A CA file could not be read.
    #[error("reading CA file {path}: {source}")]
    ReadCaFile {
        /// The file.
        path: PathBuf,
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// A CA file is not a PEM bundle of usable certificates.
    #[error("CA file {path}: {reason}; hint: give a PEM file of CERTIFICATE blocks")]
    BadCaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No root certificate at all to verify upstream servers with.
    #[error(
        "no root certificates to verify upstream servers; hint: add a CA with --upstream-ca FILE"
    )]
    NoRoots,
}
