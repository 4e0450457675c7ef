//! Host names as the broker compares them: lower case, no trailing dot,
//! either an IP address or a name rustls accepts as a DNS name.

use std::net::IpAddr;

use rustls_pki_types::ServerName;

use crate::error::Error;

/// `host` in the form the broker keys on, or [`Error::BadHost`].
pub(crate) fn normalise(host: &str) -> Result<String, Error> {
    let bad = || Error::BadHost {
        host: host.to_string(),
    };
    let trimmed = host.trim();
    let bare = trimmed
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(trimmed);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    let name = bare.strip_suffix('.').unwrap_or(bare).to_ascii_lowercase();
    if name.is_empty() || name.contains('*') || !name.contains(|c: char| c.is_ascii_alphabetic()) {
        return Err(bad());
    }
    match ServerName::try_from(name.as_str()) {
        Ok(ServerName::DnsName(_)) => Ok(name),
        _ => Err(bad()),
    }
}

/// The host of a `Host` header value or URL authority (`name[:port]`,
/// `[v6]:port`), normalised, with its port if one is given. `None` when it
/// cannot be read.
pub(crate) fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let authority = authority.trim();
    if authority.contains('@') {
        // userinfo in an authority is a classic confusion; nobody needs it here.
        return None;
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return None,
        };
        (v6, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((normalise(host).ok()?, port))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn names_and_addresses_are_normalised() {
        assert_eq!(normalise("API.GitHub.com.").unwrap(), "api.github.com");
        assert_eq!(normalise("127.0.0.1").unwrap(), "127.0.0.1");
        assert_eq!(normalise("[::1]").unwrap(), "::1");
        for bad in ["", "*.example", "a b", "1.2.3", "exa mple.com", "-"] {
            assert!(normalise(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn authorities_are_split() {
        assert_eq!(
            split_authority("Api.Example:443"),
            Some(("api.example".into(), Some(443)))
        );
        assert_eq!(
            split_authority("api.example"),
            Some(("api.example".into(), None))
        );
        assert_eq!(
            split_authority("[::1]:8443"),
            Some(("::1".into(), Some(8443)))
        );
        assert_eq!(split_authority("user@api.example"), None);
        assert_eq!(split_authority("api.example:x"), None);
    }
}
