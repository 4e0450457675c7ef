//! moat's side of starting the runner as a sandbox account
//! (`CreateProcessWithLogonW`, in `sys::logon`): the password as the wide
//! string the call takes ([`Password`], wiped when dropped, which setup
//! uses too), and what its failures mean for the person.
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

/// A sandbox account's password, the one type for it everywhere: held as
/// the NUL-terminated UTF-16 string Windows' logon and NetAPI calls take
/// ([`wide_secret`]), in a buffer of exactly its size, and overwritten
/// with zeros when dropped. Setup generates it (`setup_plan::password`),
/// sets it, stores it (DPAPI takes it as UTF-8 through
/// [`Password::with_utf8`], a copy wiped as soon as it is used) and the
/// elevated tier reads it back ([`Password::from_utf8`]). It has no
/// `Clone`, no `Display`, and its `Debug` prints no characters.
pub struct Password {
    wide: Vec<u16>,
}

// No Debug derive: a password must not end up in a log by accident.
impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

impl Password {
    /// From text (see [`wide_secret`] for what is refused). The caller's
    /// `&str` is not wiped: prefer [`Password::from_utf8`], which takes
    /// the bytes over.
    pub fn new(password: &str) -> Result<Password, String> {
        wide_secret(password).map(|wide| Password { wide })
    }

    /// From bytes (DPAPI's output, a generated password), which are wiped
    /// too, whether or not they are a valid password.
    pub fn from_utf8(mut bytes: Vec<u8>) -> Result<Password, String> {
        let result = match std::str::from_utf8(&bytes) {
            Ok(text) => Password::new(text),
            Err(_) => Err("the stored password is not UTF-8: run `moat setup`".to_string()),
        };
        wipe(&mut bytes);
        result
    }

    /// The NUL-terminated UTF-16 password, for a Windows call; valid while
    /// `self` lives and unchanged.
    pub fn as_ptr(&self) -> *const u16 {
        self.wide.as_ptr()
    }

    /// The UTF-16 units, without the terminating NUL.
    pub fn units(&self) -> &[u16] {
        let len = self.wide.len().saturating_sub(1);
        self.wide.get(..len).unwrap_or(&[])
    }

    /// How many UTF-16 units the password has.
    pub fn len(&self) -> usize {
        self.units().len()
    }

    /// Whether the password is empty (only after [`Password::clear`]: an
    /// empty password is refused when one is made).
    pub fn is_empty(&self) -> bool {
        self.units().iter().all(|u| *u == 0)
    }

    /// Calls `f` with the password as UTF-8 (what DPAPI stores), in a
    /// buffer of exactly its size that is wiped before this returns.
    pub fn with_utf8<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        let mut size = 0;
        for c in char::decode_utf16(self.units().iter().copied()) {
            size += c.map_or(3, char::len_utf8);
        }
        let mut bytes: Vec<u8> = Vec::with_capacity(size);
        let mut buf = [0u8; 4];
        for c in char::decode_utf16(self.units().iter().copied()) {
            let c = c.unwrap_or(char::REPLACEMENT_CHARACTER);
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        wipe(&mut buf);
        let result = f(&bytes);
        wipe(&mut bytes);
        result
    }

    /// Overwrites the password with zeros now, keeping the buffer (and
    /// its length): what dropping it does.
    pub fn clear(&mut self) {
        wipe(&mut self.wide);
    }

    /// The whole buffer as it is in memory, terminating NUL included: for
    /// the tests, which check that [`Password::clear`] zeroes it in place.
    #[cfg(test)]
    fn buffer(&self) -> &[u16] {
        &self.wide
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        self.clear();
    }
}

pub(crate) use crate::wipe::wipe;

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

    #[test]
    fn passwords_hold_the_text_and_refuse_what_windows_would_misread() {
        let p = Password::new("pä$$😀").unwrap();
        assert_eq!(String::from_utf16(p.units()).unwrap(), "pä$$😀");
        assert_eq!(p.len(), "pä$$😀".encode_utf16().count());
        assert!(!p.is_empty());
        // Exactly its size: no spare capacity a reallocation left behind.
        assert_eq!(p.buffer().len(), p.len() + 1);
        assert_eq!(p.buffer().last(), Some(&0));
        assert_eq!(p.as_ptr(), p.buffer().as_ptr());
        assert_eq!(format!("{:?}", p), "Password(..)");
        p.with_utf8(|bytes| assert_eq!(bytes, "pä$$😀".as_bytes()));
        assert!(Password::new("").is_err());
        assert!(Password::new("a\0b").is_err());

        let from = Password::from_utf8(b"Secret-1".to_vec()).unwrap();
        assert_eq!(String::from_utf16(from.units()).unwrap(), "Secret-1");
        let err = Password::from_utf8(vec![0xff, 0xfe]).unwrap_err();
        assert!(err.contains("not UTF-8"), "{}", err);
        assert!(Password::from_utf8(Vec::new()).is_err());
    }

    #[test]
    fn clearing_a_password_zeroes_its_buffer_in_place() {
        let mut p = Password::new("Hunter2-xyz").unwrap();
        let before = p.buffer().as_ptr();
        let len = p.buffer().len();
        assert!(p.buffer().iter().any(|u| *u != 0));
        p.clear();
        // The same memory, the same length, every unit zero: the text is
        // overwritten, not merely forgotten or truncated.
        assert_eq!(p.buffer().as_ptr(), before);
        assert_eq!(p.buffer().len(), len);
        assert!(p.buffer().iter().all(|u| *u == 0), "{:?}", p.buffer());
        assert!(p.is_empty());
        p.with_utf8(|bytes| assert!(bytes.iter().all(|b| *b == 0)));
    }

    #[test]
    fn wipe_zeroes_every_element() {
        let mut bytes = *b"password";
        wipe(&mut bytes);
        assert_eq!(bytes, [0u8; 8]);
        let mut units = [0x41u16, 0x42, 0xd83d, 0xde00];
        wipe(&mut units);
        assert_eq!(units, [0u16; 4]);
        let mut empty: [u8; 0] = [];
        wipe(&mut empty);
    }
}
