//! The elevated tier's launcher: the only privileged code of moat.
//!
//! moat (unprivileged) sends it a [`request::Request`]; the launcher checks
//! the caller and every value ([`validate`]) before it does anything as
//! root. This crate holds that boundary; the launcher itself (namespaces,
//! idmapped mounts, the switch to the sandbox account) is not built yet.

pub mod request;
#[allow(unsafe_code)]
pub mod sys;
pub mod validate;
