//! Hand-written rendering of the single JSON report line. Kept dependency
//! free on purpose: the probe runs inside the sandbox and should be a small,
//! self-contained binary.

use crate::action::{Fail, Outcome};

/// Renders the report for `action` as one line of JSON (without newline).
/// Usage errors never reach here; they go to stderr instead.
pub fn report(action: &str, outcome: &Outcome) -> String {
    let mut out = String::with_capacity(128);
    out.push_str("{\"action\":");
    push_str(&mut out, action);
    match outcome {
        Ok(detail) => {
            out.push_str(",\"ok\":true");
            push_detail(&mut out, detail);
        }
        Err(Fail::Errno { errno, detail }) => {
            out.push_str(",\"ok\":false,\"errno\":");
            out.push_str(&errno.0.to_string());
            out.push_str(",\"error\":");
            push_str(&mut out, &errno.name());
            push_detail(&mut out, detail);
        }
        Err(Fail::Other { error, detail }) => {
            out.push_str(",\"ok\":false,\"errno\":null,\"error\":");
            push_str(&mut out, error);
            push_detail(&mut out, detail);
        }
        Err(Fail::Usage(message)) => {
            // Unreachable in practice (main reports usage on stderr), but a
            // well-formed line is better than a panic if that ever changes.
            out.push_str(",\"ok\":false,\"errno\":null,\"error\":\"usage\"");
            push_detail(&mut out, message);
        }
    }
    out.push('}');
    out
}

fn push_detail(out: &mut String, detail: &str) {
    if !detail.is_empty() {
        out.push_str(",\"detail\":");
        push_str(out, detail);
    }
}

/// Appends `s` as a JSON string literal. Non-ASCII text is valid UTF-8 (Rust
/// strings are), so only quotes, backslashes and control characters need
/// escaping.
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::report;
    use crate::action::Fail;
    use crate::errno::Errno;

    #[test]
    fn success_without_detail() {
        assert_eq!(
            report("mkdir", &Ok(String::new())),
            r#"{"action":"mkdir","ok":true}"#
        );
    }

    #[test]
    fn errno_failure_with_escaped_detail() {
        let fail = Fail::Errno {
            errno: Errno(13),
            detail: "a\"b\\c\nd\u{1}".to_string(),
        };
        assert_eq!(
            report("write-file", &Err(fail)),
            r#"{"action":"write-file","ok":false,"errno":13,"error":"EACCES","detail":"a\"b\\c\nd\u0001"}"#
        );
    }

    #[test]
    fn non_errno_failure() {
        let fail = Fail::Other {
            error: "Name or service not known".to_string(),
            detail: String::new(),
        };
        assert_eq!(
            report("dns-lookup", &Err(fail)),
            r#"{"action":"dns-lookup","ok":false,"errno":null,"error":"Name or service not known"}"#
        );
    }
}
