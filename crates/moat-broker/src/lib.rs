//! moat's secret broker: secrets that never enter the sandbox.
//!
//! Inside the sandbox an environment variable such as `GITHUB_TOKEN` holds
//! a *placeholder* of the same shape as the real token ([`placeholder`]).
//! moat's proxy, outside the sandbox, hands each connection to a brokered
//! host (one a secret is bound to, or one with [`RequestRule`]s) to
//! [`Broker::serve`], which terminates TLS with a leaf certificate from a
//! per-run [`Authority`], reads one request head, and swaps the placeholders
//! of the secrets bound to that host for their real values in the header
//! values (also inside `Authorization: Basic`) before forwarding the
//! request over TLS verified against the system's roots.
//!
//! # Threat model
//!
//! The sandboxed program is not trusted: it may try to get a real value
//! out, or to use it against another host.
//!
//! - **The values never enter the sandbox.** They exist only in this
//!   process and in requests to their hosts. They are never logged,
//!   reported ([`Outcome`] names secrets by variable) or `Debug`-printed.
//! - **The authority's key never leaves memory.** It is made at start, is
//!   never written anywhere, and the sandbox gets only the certificate, so
//!   nothing inside can mint certificates to intercept anything. Its name
//!   constraints limit it to the brokered hosts even as a trust anchor.
//! - **A placeholder sent to another host is refused (403), never
//!   forwarded.** It could not leak the value (the broker only ever
//!   replaces it for bound hosts), but it shows a program sending a
//!   credential where it does not belong, which the run report should show
//!   and which must not succeed silently. The `Host` header and absolute
//!   URLs must name the connection's own host, so a shared front end
//!   cannot route a request with a real value to another tenant.
//! - **One request per connection.** The forwarded head has
//!   `Connection: close` (client `Connection`, `Keep-Alive`, `Upgrade` and
//!   the like removed), ALPN offers only `http/1.1`, and bytes after the
//!   request's body are dropped, so every request that reaches the upstream
//!   was checked and rewritten here; there is no second request on the
//!   same connection that skipped the rules or carried an unchecked head.
//! - **Upstreams are verified as usual** (WebPKI, the system bundle plus
//!   `--upstream-ca` files); this cannot be turned off. A failure is
//!   answered `502` naming the reason.
//!
//! # Limits
//!
//! Placeholders are replaced in header values only, never in URLs or
//! bodies. Hosts are exact names (no wildcards). Request heads are bounded
//! (16 KiB, [`Limits`] for time). Paths for hosts with rules are matched
//! textually and refused when ambiguous (`..`, `%2e`, `%2f`, ...), which
//! also refuses APIs that use `%2F` in paths (GitLab project ids).
//! Programs that pin certificates or ignore the system trust bundle fail
//! their handshake with moat (reported as [`Verdict::Failed`]).
//!
//! # Tests
//!
//! Unit tests per module; `tests/broker.rs` runs real TLS on loopback on
//! both sides (a rustls client, `curl` where installed, and a test upstream
//! with its own CA).
#![forbid(unsafe_code)]

mod authority;
mod body;
mod broker;
mod error;
mod head;
mod host;
mod inject;
mod outcome;
mod placeholder;
mod relay;
mod roots;
mod rules;
mod secret;

pub use authority::Authority;
pub use broker::{Broker, Limits};
pub use error::Error;
pub use head::MAX_HEAD;
pub use outcome::{Outcome, Refusal, Verdict};
pub use placeholder::{placeholder, MIN_RANDOM_CHARS};
pub use roots::UpstreamRoots;
pub use rules::{RequestRule, RuleRefusal, Rules};
pub use secret::Secret;
