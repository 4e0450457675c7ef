//! moat's side of starting the runner as a sandbox account
//! (`CreateProcessWithLogonW`, in `sys::logon`): the password as the wide
//! string the call takes, and what its failures mean for the person.
//!
//! The logon failures people hit fall in two groups: the ones `moat setup`
//! repairs (the stored password no longer works, the account is locked
//! out, expired, disabled or gone: setup sets a new password and enables
//! the account) and the ones only an administrator can lift (a policy that
//! denies the account the logon right, error 1385, or an account
//! restriction).

use std::fmt;

use crate::errors;

/// Who can fix a failed logon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// `moat setup` (elevated): it sets a new password, unlocks and
    /// enables the account, or recreates it.
    RerunSetup,
    /// A local or domain policy: an administrator has to change it.
    Administrator,
}

/// Who can fix a failed `CreateProcessWithLogonW` with Win32 error `code`,
/// when it is a failure of the account rather than of the runner.
pub fn remedy(code: u32) -> Option<Remedy> {
    match code {
        // Bad password, expired (two codes), disabled, no such account,
        // broken profile, locked out.
        1326 | 1330 | 1907 | 1331 | 1332 | 1168 | 1909 => Some(Remedy::RerunSetup),
        // Logon type not granted; logon hours or workstation restriction.
        1385 | 1327 => Some(Remedy::Administrator),
        _ => None,
    }
}

/// What failed while starting the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `CreateProcessWithLogonW` itself: the logon or the process.
    Logon,
    /// Putting the (suspended) runner into moat's job.
    Job,
    /// Resuming the runner.
    Resume,
}

/// A runner that could not be started as `account`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogonError {
    pub account: String,
    pub step: Step,
    /// The Win32 error.
    pub code: u32,
}

impl LogonError {
    /// Who can fix it, when it is a logon failure with a known cause.
    pub fn remedy(&self) -> Option<Remedy> {
        match self.step {
            Step::Logon => remedy(self.code),
            Step::Job | Step::Resume => None,
        }
    }
}

/// Errors whose general meaning in `errors::explain` would mislead here.
fn explain_logon(code: u32) -> Option<&'static str> {
    Some(match code {
        2 | 3 => "the runner program was not found: reinstall moat, or run `moat setup` to put the runner where the sandbox accounts can read it",
        5 => "access denied: the sandbox account may not run the runner program or use its directory; run `moat setup` to grant it read and execute there",
        267 => "the runner's working directory is not a directory the sandbox account can use",
        1058 => "the Secondary Logon service (seclogon), which starting a process as another account needs, is disabled: set its startup type to Manual (services.msc) or ask your administrator",
        _ => return None,
    })
}

impl fmt::Display for LogonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.step {
            Step::Logon => {
                let what = format!("starting the runner as {}", self.account);
                match explain_logon(self.code) {
                    Some(why) => write!(f, "{what} failed (error {}): {why}", self.code),
                    None => f.write_str(&errors::describe(&what, self.code)),
                }
            }
            Step::Job => f.write_str(&errors::describe(
                &format!("putting the runner of {} in moat's job", self.account),
                self.code,
            )),
            Step::Resume => f.write_str(&errors::describe(
                &format!("resuming the runner of {}", self.account),
                self.code,
            )),
        }
    }
}

impl std::error::Error for LogonError {}

/// `password` as a NUL-terminated UTF-16 string in a buffer of exactly
/// its size, so that building it leaves no reallocated copy behind for the
/// caller's wipe to miss. Refused: an empty password (setup never makes
/// one) and a NUL inside (Windows would see a shorter one).
pub fn wide_secret(password: &str) -> Result<Vec<u16>, String> {
    if password.is_empty() {
        return Err("the sandbox account's password is empty: run `moat setup`".to_string());
    }
    if password.contains('\0') {
        return Err("the sandbox account's password contains a NUL character".to_string());
    }
    let len = password.encode_utf16().count() + 1;
    let mut wide = Vec::with_capacity(len);
    wide.extend(password.encode_utf16());
    wide.push(0);
    Ok(wide)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn logon(code: u32) -> LogonError {
        LogonError {
            account: "MoatSandboxOffline".to_string(),
            step: Step::Logon,
            code,
        }
    }

    #[test]
    fn the_logon_failures_people_hit() {
        for (code, remedy, words) in [
            (1385, Remedy::Administrator, "Log on as a batch job"),
            (1327, Remedy::Administrator, "restriction"),
            (1326, Remedy::RerunSetup, "moat setup"),
            (1909, Remedy::RerunSetup, "locked out"),
            (1330, Remedy::RerunSetup, "expired"),
            (1907, Remedy::RerunSetup, "expired"),
            (1331, Remedy::RerunSetup, "disabled"),
            (1332, Remedy::RerunSetup, "moat setup"),
        ] {
            let err = logon(code);
            assert_eq!(err.remedy(), Some(remedy), "{code}");
            let text = err.to_string();
            assert!(
                text.starts_with("starting the runner as MoatSandboxOffline failed"),
                "{text}"
            );
            assert!(text.contains(&format!("error {code}")), "{text}");
            assert!(text.contains(words), "{code}: {text}");
        }
    }

    #[test]
    fn logon_specific_meanings() {
        assert!(logon(2)
            .to_string()
            .contains("runner program was not found"));
        assert!(logon(5).to_string().contains("may not run the runner"));
        assert!(logon(1058).to_string().contains("Secondary Logon"));
        assert_eq!(logon(5).remedy(), None);
        assert_eq!(
            logon(31).to_string(),
            "starting the runner as MoatSandboxOffline failed (error 31)"
        );
    }

    #[test]
    fn other_steps_have_no_logon_remedy() {
        let job = LogonError {
            step: Step::Job,
            ..logon(1326)
        };
        assert_eq!(job.remedy(), None);
        assert!(job.to_string().contains("moat's job"));
        let resume = LogonError {
            step: Step::Resume,
            ..logon(6)
        };
        assert_eq!(
            resume.to_string(),
            "resuming the runner of MoatSandboxOffline failed (error 6)"
        );
    }

    #[test]
    fn remedies() {
        assert_eq!(remedy(0), None);
        assert_eq!(remedy(5), None);
        assert_eq!(remedy(1168), Some(Remedy::RerunSetup));
    }

    #[test]
    fn wide_secrets() {
        let wide = wide_secret("pä$$😀").unwrap();
        assert_eq!(wide.len(), "pä$$😀".encode_utf16().count() + 1);
        assert_eq!(wide.capacity(), wide.len());
        assert_eq!(wide.last(), Some(&0));
        assert_eq!(
            String::from_utf16(&wide[..wide.len() - 1]).unwrap(),
            "pä$$😀"
        );
        assert!(wide_secret("").is_err());
        assert!(wide_secret("a\0b").is_err());
    }
}
