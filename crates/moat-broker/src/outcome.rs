//! What happened to one brokered connection, for moat's run report.

use std::fmt;

use crate::rules::RuleRefusal;

/// The record of one connection given to [`crate::Broker::serve`]. It never
/// holds a secret's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The host the connection was for, normalised.
    pub host: String,
    /// The port the client connected to.
    pub port: u16,
    /// The request's method, once its head was read.
    pub method: Option<String>,
    /// The request's path without the query string, once read.
    pub path: Option<String>,
    /// The environment variables whose values were put in the request.
    pub injected: Vec<String>,
    /// What the broker did.
    pub verdict: Verdict,
    /// Plaintext bytes sent to the upstream (head and body).
    pub bytes_up: u64,
    /// Plaintext bytes sent back to the client.
    pub bytes_down: u64,
    /// How the relay ended when it did not end cleanly (idle, reset).
    pub note: Option<String>,
}

/// What the broker did with a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// The request was forwarded and the response relayed.
    Forwarded,
    /// moat answered the request itself (403, 400 or 431); nothing was
    /// sent upstream.
    Refused(Refusal),
    /// The upstream's certificate did not verify; the client got `502`.
    UpstreamUntrusted {
        /// Why, from the verifier.
        reason: String,
    },
    /// TLS to the upstream failed otherwise; the client got `502`.
    UpstreamFailed {
        /// Why.
        reason: String,
    },
    /// No request could be read: the client's handshake failed (it may
    /// not trust moat's CA), it closed early, or it timed out.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Why moat refused a request without forwarding it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The placeholder of a secret not bound to this host was in the head.
    StrayPlaceholder {
        /// The secret's environment variable.
        env: String,
        /// The hosts it is bound to.
        bound_to: Vec<String>,
        /// Where it was (`header Authorization`, `the request line`).
        found_in: String,
    },
    /// The host's request rules do not allow it.
    Rule(RuleRefusal),
    /// The `Host` header or absolute URL names another host or port than
    /// the connection's.
    HostMismatch {
        /// The authority the request named.
        named: String,
    },
    /// The head is not a request moat can forward unambiguously.
    BadRequest {
        /// What is wrong.
        reason: String,
    },
    /// The head is larger than 16 KiB or has too many fields.
    HeadTooLarge,
}

impl Refusal {
    /// The status line moat answers with.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            Refusal::StrayPlaceholder { .. } | Refusal::Rule(_) | Refusal::HostMismatch { .. } => {
                (403, "Forbidden")
            }
            Refusal::BadRequest { .. } => (400, "Bad Request"),
            Refusal::HeadTooLarge => (431, "Request Header Fields Too Large"),
        }
    }

    /// The message for the client and the report (`host` is the
    /// connection's).
    pub fn message(&self, host: &str) -> String {
        match self {
            Refusal::StrayPlaceholder {
                env,
                bound_to,
                found_in,
            } => format!(
                "moat: the placeholder of {env} was sent to {host} (in {found_in}), but {env} is bound to {} only; the request was not forwarded",
                bound_to.join(", ")
            ),
            Refusal::Rule(RuleRefusal::NotAllowed {
                method,
                path,
                allowed,
            }) => format!(
                "moat: {method} {path} on {host} is not allowed: {allowed} (request rule for {host})"
            ),
            Refusal::Rule(r) => format!("moat: {r} (request rule for {host})"),
            Refusal::HostMismatch { named } => format!(
                "moat: the request names {named:?} but this connection is to {host}; a brokered connection carries requests for its own host only"
            ),
            Refusal::BadRequest { reason } => format!("moat: bad request to {host}: {reason}"),
            Refusal::HeadTooLarge => format!(
                "moat: the request head to {host} is larger than {} bytes",
                crate::head::MAX_HEAD
            ),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Forwarded => write!(f, "forwarded"),
            Verdict::Refused(r) => write!(f, "refused ({} {})", r.status().0, r.status().1),
            Verdict::UpstreamUntrusted { reason } => write!(f, "upstream not trusted: {reason}"),
            Verdict::UpstreamFailed { reason } => write!(f, "upstream TLS failed: {reason}"),
            Verdict::Failed { reason } => write!(f, "failed: {reason}"),
        }
    }
}
