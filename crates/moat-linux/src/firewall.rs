//! The elevated tier's firewall check: the nftables table moat owns must
//! refuse every packet of the offline account before a run as that
//! account starts. `moat setup` loads the table; this reads it back.

use std::process::{Command, Stdio};

use moat_spec::install::{NFT, NFT_TABLE, STATE_DIR};

use crate::rootdir::{RootDir, RootDirError};

/// Whether `listing` (`nft list table inet moat`) refuses everything of
/// `uid`: both rules, naming the account by number or by name, and nothing
/// that accepts traffic before them.
pub fn listing_is_complete(listing: &str, uid: u32, name: &str) -> bool {
    let who = |l: &str| {
        l.contains(&format!("meta skuid {uid} ")) || l.contains(&format!("meta skuid \"{name}\""))
    };
    let tcp = listing
        .lines()
        .any(|l| who(l) && l.contains("l4proto tcp") && l.contains("reject with tcp reset"));
    let rest = listing.lines().any(|l| {
        who(l) && !l.contains("l4proto") && l.contains("reject with icmpx admin-prohibited")
    });
    let accepts = listing
        .lines()
        .any(|l| l.contains("accept") && !l.contains("policy accept;"));
    tcp && rest && listing.contains("hook output") && !accepts
}

/// The nft tool with `args`: by its absolute path, with a fixed
/// environment, and with every id root's (a setuid program's real ids are
/// its caller's, and nft refuses to run like that).
pub fn nft(args: &[&str]) -> Command {
    let mut cmd = Command::new(NFT);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .current_dir("/")
        .stdin(Stdio::null());
    crate::sys::ids::as_full_root(&mut cmd);
    cmd
}

/// The table as nft lists it, or `None` when it does not exist (or nft
/// cannot run).
pub fn list() -> Option<String> {
    let mut args = vec!["list", "table"];
    args.extend(NFT_TABLE.split(' '));
    let out = nft(&args).stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Where the launcher keeps the ruleset generation it verified last.
const STAMP: &str = "firewall-verified";

/// Whether the table refuses all of `uid`'s traffic, for the launcher
/// before each run. When the ruleset's generation is one already
/// verified, that is one netlink round trip; otherwise the table is listed
/// and checked, and the generation remembered in moat's state directory.
pub fn verified_for_run(uid: u32, name: &str) -> Result<bool, RootDirError> {
    let Ok(before) = crate::sys::nfgen::generation() else {
        return Ok(false);
    };
    let state = RootDir::open(STATE_DIR)?;
    // What a writer killed between creating and renaming left.
    state.sweep(STAMP);
    let stamp = format!("{uid} {before}\n");
    if state.read(STAMP, 64).ok().flatten().as_deref() == Some(stamp.as_bytes()) {
        return Ok(true);
    }
    let complete = list().is_some_and(|l| listing_is_complete(&l, uid, name));
    // Remembered only if nothing changed while it was being listed. Not
    // remembered (a write that failed) costs the next run a listing.
    if complete && crate::sys::nfgen::generation() == Ok(before) {
        let _ = state.replace(STAMP, stamp.as_bytes(), 0o644);
    }
    Ok(complete)
}

/// Forgets the verified generation (setup's removal).
pub fn forget(state: &RootDir) -> Result<(), RootDirError> {
    state.remove(STAMP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_is_complete_only_with_both_rules() {
        let full = "table inet moat {\n\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tmeta skuid \"moat-offline\" meta l4proto tcp counter packets 0 bytes 0 reject with tcp reset comment \"x\"\n\t\tmeta skuid \"moat-offline\" counter packets 0 bytes 0 reject with icmpx admin-prohibited comment \"x\"\n\t}\n}\n";
        assert!(listing_is_complete(full, 990, "moat-offline"));
        let tcp_only: String = full
            .lines()
            .filter(|l| !l.contains("icmpx"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!listing_is_complete(&tcp_only, 990, "moat-offline"));
        assert!(!listing_is_complete(full, 991, "someone-else"));
        let accepting = full.replace("counter packets 0 bytes 0 reject with tcp reset", "accept");
        assert!(!listing_is_complete(&accepting, 990, "moat-offline"));
    }
}
