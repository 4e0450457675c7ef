//! Finding placeholders in a request head and swapping them for values.
//!
//! Replacement is exact substring replacement in header values, and inside
//! `Basic` credentials (decoded, replaced in `user:password`, encoded
//! again), which is how git sends tokens. The request line is only
//! searched: a placeholder in a URL is never replaced, since URLs end up in
//! logs. Header names are searched too.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use crate::head::Head;

/// Decodes `Basic` credentials with or without padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A brokered secret as the broker keeps it.
pub(crate) struct Brokered {
    pub(crate) env: String,
    pub(crate) placeholder: String,
    pub(crate) value: String,
    /// Normalised.
    pub(crate) hosts: Vec<String>,
}

impl Brokered {
    pub(crate) fn bound_to(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h == host)
    }
}

/// A placeholder found where it may not go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) env: String,
    /// `the request line`, `header Authorization`,
    /// `header Authorization (Basic credentials)`.
    pub(crate) place: String,
}

/// The first placeholder in `head` of a secret not bound to `host`.
pub(crate) fn stray(head: &Head, secrets: &[Brokered], host: &str) -> Option<Found> {
    let foreign: Vec<&Brokered> = secrets.iter().filter(|s| !s.bound_to(host)).collect();
    let hit = |hay: &[u8]| {
        foreign
            .iter()
            .find(|s| contains(hay, s.placeholder.as_bytes()))
    };
    let line = format!("{} {}", head.method, head.target);
    if let Some(s) = hit(line.as_bytes()) {
        return Some(found(s, "the request line".into()));
    }
    for h in &head.headers {
        if let Some(s) = hit(h.name.as_bytes()).or_else(|| hit(&h.value)) {
            return Some(found(s, format!("header {}", h.name)));
        }
        if let Some(decoded) = basic_credentials(&h.value) {
            if let Some(s) = hit(&decoded) {
                return Some(found(s, format!("header {} (Basic credentials)", h.name)));
            }
        }
    }
    None
}

fn found(s: &Brokered, place: String) -> Found {
    Found {
        env: s.env.clone(),
        place,
    }
}

/// Replaces, in every header value, the placeholders of the secrets bound
/// to `host` by their values. Returns the names of the secrets put in.
pub(crate) fn inject(head: &mut Head, secrets: &[Brokered], host: &str) -> Vec<String> {
    let mut injected: Vec<String> = Vec::new();
    let mut bound: Vec<&Brokered> = secrets.iter().filter(|s| s.bound_to(host)).collect();
    // Longest first, in case one placeholder were part of another.
    bound.sort_by_key(|s| std::cmp::Reverse(s.placeholder.len()));
    let mut note = |env: &str| {
        if !injected.iter().any(|e| e == env) {
            injected.push(env.to_string());
        }
    };
    for h in &mut head.headers {
        if let Some((scheme_len, decoded)) = basic_parts(&h.value) {
            let mut creds = decoded;
            let mut changed = false;
            for s in &bound {
                if let Some(new) = replace_all(&creds, s.placeholder.as_bytes(), s.value.as_bytes())
                {
                    creds = new;
                    changed = true;
                    note(&s.env);
                }
            }
            if changed {
                let mut value = h.value[..scheme_len].to_vec();
                value.extend_from_slice(STANDARD.encode(&creds).as_bytes());
                h.value = value;
            }
        }
        for s in &bound {
            if let Some(new) = replace_all(&h.value, s.placeholder.as_bytes(), s.value.as_bytes()) {
                h.value = new;
                note(&s.env);
            }
        }
    }
    injected
}

/// The decoded `user:password` of a `Basic` header value.
fn basic_credentials(value: &[u8]) -> Option<Vec<u8>> {
    basic_parts(value).map(|(_, decoded)| decoded)
}

/// The length of `Basic ` (with its spaces) and the decoded credentials.
fn basic_parts(value: &[u8]) -> Option<(usize, Vec<u8>)> {
    let scheme = b"basic";
    if value.len() <= scheme.len() || !value[..scheme.len()].eq_ignore_ascii_case(scheme) {
        return None;
    }
    let rest = &value[scheme.len()..];
    let spaces = rest
        .iter()
        .take_while(|b| **b == b' ' || **b == b'\t')
        .count();
    if spaces == 0 {
        return None;
    }
    let token = rest[spaces..].trim_ascii_end();
    let decoded = LENIENT.decode(token).ok()?;
    Some((scheme.len() + spaces, decoded))
}

/// The first secret whose placeholder is anywhere in `bytes`, or in the
/// `Basic` credentials of a head they begin with: for requests that are
/// never given secrets (plain HTTP), where any placeholder is a stray.
pub(crate) fn any_placeholder<'a>(bytes: &[u8], secrets: &'a [Brokered]) -> Option<&'a Brokered> {
    if let Some(s) = secrets
        .iter()
        .find(|s| contains(bytes, s.placeholder.as_bytes()))
    {
        return Some(s);
    }
    let (head, _) = crate::head::parse(bytes).ok().flatten()?;
    head.headers.iter().find_map(|h| {
        let decoded = basic_credentials(&h.value)?;
        secrets
            .iter()
            .find(|s| contains(&decoded, s.placeholder.as_bytes()))
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// `hay` with every `needle` replaced by `with`, or `None` if it has none.
fn replace_all(hay: &[u8], needle: &[u8], with: &[u8]) -> Option<Vec<u8>> {
    if !contains(hay, needle) {
        return None;
    }
    let mut out = Vec::with_capacity(hay.len() + with.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::head::parse;

    fn secrets() -> Vec<Brokered> {
        vec![
            Brokered {
                env: "GH".into(),
                placeholder: "ghp_PLACEHOLDERaaaa".into(),
                value: "ghp_REALVALUEbbbbbbb".into(),
                hosts: vec!["api.github.com".into()],
            },
            Brokered {
                env: "NPM".into(),
                placeholder: "npm_PLACEHOLDERcccc".into(),
                value: "npm_REALdddddddddd".into(),
                hosts: vec!["registry.npmjs.org".into()],
            },
        ]
    }

    fn head(text: &str) -> Head {
        parse(text.as_bytes()).unwrap().unwrap().0
    }

    #[test]
    fn placeholders_are_replaced_in_headers_for_bound_hosts() {
        let mut h = head(
            "GET /?t=ghp_PLACEHOLDERaaaa HTTP/1.1\r\nAuthorization: Bearer ghp_PLACEHOLDERaaaa\r\n\
             X-Other: a ghp_PLACEHOLDERaaaa b ghp_PLACEHOLDERaaaa\r\n\r\n",
        );
        assert_eq!(
            inject(&mut h, &secrets(), "api.github.com"),
            vec!["GH".to_string()]
        );
        assert_eq!(
            h.values("authorization").next().unwrap(),
            b"Bearer ghp_REALVALUEbbbbbbb"
        );
        assert_eq!(
            h.values("x-other").next().unwrap(),
            b"a ghp_REALVALUEbbbbbbb b ghp_REALVALUEbbbbbbb"
        );
        // Never in the URL.
        assert_eq!(h.target, "/?t=ghp_PLACEHOLDERaaaa");
        // Not for other hosts.
        let mut h = head("GET / HTTP/1.1\r\nAuthorization: Bearer ghp_PLACEHOLDERaaaa\r\n\r\n");
        assert!(inject(&mut h, &secrets(), "example.com").is_empty());
        assert_eq!(
            h.values("authorization").next().unwrap(),
            b"Bearer ghp_PLACEHOLDERaaaa"
        );
    }

    #[test]
    fn basic_credentials_are_decoded_replaced_and_encoded() {
        let creds = STANDARD.encode("x-access-token:ghp_PLACEHOLDERaaaa");
        let unpadded = creds.trim_end_matches('=');
        let mut h = head(&format!(
            "GET / HTTP/1.1\r\nAuthorization: basic  {unpadded}\r\n\r\n"
        ));
        assert_eq!(
            inject(&mut h, &secrets(), "api.github.com"),
            vec!["GH".to_string()]
        );
        let value = h.values("authorization").next().unwrap().to_vec();
        assert!(value.starts_with(b"basic  "));
        assert_eq!(
            STANDARD.decode(&value[7..]).unwrap(),
            b"x-access-token:ghp_REALVALUEbbbbbbb"
        );
    }

    #[test]
    fn placeholders_of_unbound_secrets_are_found_anywhere() {
        let s = secrets();
        let cases = [
            (
                "GET /?token=npm_PLACEHOLDERcccc HTTP/1.1\r\n\r\n",
                "the request line",
            ),
            (
                "GET / HTTP/1.1\r\nX-Token: npm_PLACEHOLDERcccc\r\n\r\n",
                "header X-Token",
            ),
            (
                &format!(
                    "GET / HTTP/1.1\r\nAuthorization: Basic {}\r\n\r\n",
                    STANDARD.encode("u:npm_PLACEHOLDERcccc")
                ),
                "header Authorization (Basic credentials)",
            ),
        ];
        for (text, place) in cases {
            let f = stray(&head(text), &s, "api.github.com").unwrap();
            assert_eq!((f.env.as_str(), f.place.as_str()), ("NPM", place), "{text}");
        }
        // Bound placeholders are not stray, anywhere.
        assert_eq!(
            stray(
                &head("GET /?npm_PLACEHOLDERcccc HTTP/1.1\r\n\r\n"),
                &s,
                "registry.npmjs.org"
            ),
            None
        );
    }
}
