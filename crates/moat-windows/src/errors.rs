//! The failures people hit with the anchor's Windows sandbox, turned into
//! messages that name the cause and the fix: a declined UAC prompt, a
//! logon type denied by policy (1385), a locked, expired, disabled or
//! deleted sandbox account, a broken profile, a program packaged by the Store.

/// What a Win32 error means for moat, when it has a known cause and fix.
pub fn explain(code: u32) -> Option<&'static str> {
    Some(match code {
        5 => "access denied: the path or object is not yours to change (moat never changes ACLs of files it did not create a grant for)",
        740 => "this step needs an administrator: run `moat setup` from an elevated prompt, or accept the UAC prompt it shows",
        1168 => "the sandbox account's profile is broken (its ProfileList entry points nowhere): run `moat setup`, which removes and recreates the profile",
        1223 => "the administrator prompt (UAC) was declined: `moat setup` needs it once; until then moat runs in the unelevated tier",
        1326 => "the sandbox account's stored password no longer works (changed or reset by someone else): run `moat setup` to set a new one",
        1327 => "an account restriction stops the sandbox account from logging on (logon hours, workstations): clear it for the moat accounts",
        1330 | 1907 => "the sandbox account's password expired: run `moat setup` to set a new one (setup makes passwords that never expire; a domain policy may override that)",
        1331 => "the sandbox account is disabled: run `moat setup` to enable it again",
        1332 => "the sandbox account does not exist (deleted?): run `moat setup` to create it again",
        1385 => "the sandbox account may not log on this way (error 1385): a local or group policy denies it the logon right; allow the group MoatSandboxUsers \"Log on as a batch job\" (secpol.msc, User Rights Assignment) or ask your administrator",
        1909 => "the sandbox account is locked out (too many failed logons): run `moat setup` to unlock it and set a new password",
        0xC000_0142 => "the command could not start its window station or desktop (0xC0000142): this happens in service sessions such as OpenSSH's; run moat from an interactive session",
        _ => return None,
    })
}

/// What `moat setup` (and `--remove`) says when its process is not an
/// administrator's: not elevated, or elevated to a token without the
/// Administrators group (a filtered token, another user's consent).
pub const NOT_ELEVATED: &str =
    "moat setup must run as an administrator: it creates local accounts, \
firewall rules and a directory only administrators may write. Run it from an elevated prompt \
(right-click the terminal, \"Run as administrator\") and accept the UAC prompt; if you \
declined it, run it again. Until then moat runs commands in the unelevated tier only";

/// `what` failed with `code`: the explanation when known, the number
/// always.
pub fn describe(what: &str, code: u32) -> String {
    match explain(code) {
        Some(why) => format!("{what} failed (error {code}): {why}"),
        None => format!("{what} failed (error {code})"),
    }
}

fn folded(path: &str) -> String {
    path.replace('/', "\\").to_ascii_lowercase()
}

/// Whether `program` is a Store-packaged program or one of its execution
/// aliases: those cannot start under a restricted token or as another
/// account (the anchor leaked temporary profiles through the Store's
/// `pwsh` alias), so moat refuses them up front.
pub fn store_packaged(program: &str) -> bool {
    let p = folded(program);
    p.contains("\\program files\\windowsapps\\")
        || p.contains("\\appdata\\local\\microsoft\\windowsapps\\")
}

/// The refusal for a Store-packaged program.
pub fn store_packaged_refusal(program: &str) -> String {
    format!(
        "{program} is a Microsoft Store package (or its alias), which cannot run in the sandbox: \
         install the regular (non-Store) build of the program and put it first on PATH"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_errors_people_hit_are_explained() {
        for code in [
            740u32,
            1168,
            1223,
            1326,
            1330,
            1331,
            1332,
            1385,
            1907,
            1909,
            0xC000_0142,
        ] {
            let text = describe("starting the runner", code);
            assert!(text.contains(&code.to_string()), "{text}");
            assert!(explain(code).is_some(), "{code}");
        }
        assert!(describe("x", 1385).contains("Log on as a batch job"));
        assert!(describe("x", 1223).contains("declined"));
        assert_eq!(
            describe("opening a pipe", 231),
            "opening a pipe failed (error 231)"
        );
    }

    #[test]
    fn not_elevated_says_how_to_elevate() {
        assert!(NOT_ELEVATED.contains("administrator"));
        assert!(NOT_ELEVATED.contains("UAC"));
        assert!(NOT_ELEVATED.contains("elevated prompt"));
        assert!(!NOT_ELEVATED.contains("  "), "{NOT_ELEVATED}");
    }

    #[test]
    fn store_packages_are_recognised() {
        assert!(store_packaged(
            r"C:\Program Files\WindowsApps\Microsoft.PowerShell_7.4_x64__8wekyb3d8bbwe\pwsh.exe"
        ));
        assert!(store_packaged(
            r"C:\Users\me\AppData\Local\Microsoft\WindowsApps\pwsh.exe"
        ));
        assert!(store_packaged(
            "c:/users/me/appdata/local/microsoft/windowsapps/python.exe"
        ));
        assert!(!store_packaged(r"C:\Program Files\PowerShell\7\pwsh.exe"));
        assert!(store_packaged_refusal("pwsh.exe").contains("non-Store"));
    }
}
