//! The elevated tier's launcher: the only privileged code of moat.
//!
//! moat (unprivileged) sends it a [`request::Request`]; the launcher checks
//! the caller and every value ([`validate`]) before it does anything as
//! root. This crate holds that boundary; the setuid binary itself is the
//! `moat-launcher` crate, which builds the run with `moat-linux`.

pub mod request;
#[allow(unsafe_code)]
pub mod sys;
pub mod validate;
