//! The firewall rules of the elevated tier: one nftables table owned by
//! moat, in which the offline account's packets are refused on every
//! interface, loopback included. Refused rather than dropped, so a program
//! gets an error at once instead of hanging in connect().

use std::io::Write;
use std::process::{Command, Stdio};

/// The table moat owns.
pub const TABLE: &str = "inet moat";

/// The ruleset for the offline account `uid`.
pub fn ruleset(uid: u32) -> String {
    // `add` + `flush` make loading it again replace, not append.
    format!(
        "add table {TABLE}\n\
         flush table {TABLE}\n\
         table {TABLE} {{\n\
         \tchain output {{\n\
         \t\ttype filter hook output priority filter; policy accept;\n\
         \t\tmeta skuid {uid} meta l4proto tcp counter reject with tcp reset comment \"moat-offline: no network\"\n\
         \t\tmeta skuid {uid} counter reject with icmpx admin-prohibited comment \"moat-offline: no network\"\n\
         \t}}\n\
         }}\n"
    )
}

/// Whether `listing` (`nft list table inet moat`) refuses everything of
/// `uid`: both rules, naming the account by number or by name.
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
    // Nothing in the table may let traffic through before the rejects.
    let accepts = listing
        .lines()
        .any(|l| l.contains("accept") && !l.contains("policy accept;"));
    tcp && rest && listing.contains("hook output") && !accepts
}

fn nft() -> Command {
    let mut cmd = super::accounts::system_tool("nft");
    crate::sys::ids::as_full_root(&mut cmd);
    cmd
}

/// Where the launcher keeps the last ruleset generation it verified.
fn verified_path() -> std::path::PathBuf {
    super::record::dir().join("firewall-verified")
}

/// Whether the table refuses all of `uid`'s traffic, for the launcher
/// before each run: when the ruleset's generation is one already
/// verified, that is one netlink round trip; otherwise the table is listed
/// and checked, and the generation remembered.
pub fn verified_for_run(uid: u32, name: &str) -> bool {
    let Ok(before) = crate::sys::nfgen::generation() else {
        return false;
    };
    let stamp = format!("{uid} {before}\n");
    if std::fs::read_to_string(verified_path()).ok().as_deref() == Some(stamp.as_str()) {
        return true;
    }
    let complete = list().is_some_and(|l| listing_is_complete(&l, uid, name));
    // Remembered only if nothing changed while it was being listed.
    if complete && crate::sys::nfgen::generation() == Ok(before) {
        let tmp = verified_path().with_extension("tmp");
        if std::fs::write(&tmp, &stamp).is_ok() {
            let _ = std::fs::rename(&tmp, verified_path());
        }
    }
    complete
}

/// Whether the nft tool runs and the kernel has nf_tables.
pub fn available() -> Result<(), String> {
    match nft().args(["list", "tables"]).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "nft cannot list tables ({}): the kernel needs nf_tables (CONFIG_NF_TABLES)",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(_) => Err("the nft tool is missing: install it with `apt install nftables`".into()),
    }
}

/// Loads `text` with `nft -f -`.
pub fn load(text: &str) -> Result<(), String> {
    let mut child = nft()
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running nft: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("writing to nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("running nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft refused the rules: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The table as nft lists it, or `None` when it does not exist.
pub fn list() -> Option<String> {
    let out = nft()
        .args(["list", "table"])
        .args(TABLE.split(' '))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Deletes the table if it exists; whether it did.
pub fn delete() -> Result<bool, String> {
    if list().is_none() {
        return Ok(false);
    }
    load(&format!("delete table {TABLE}\n")).map(|()| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ruleset_refuses_the_offline_account_on_every_path() {
        let r = ruleset(990);
        assert!(
            r.starts_with("add table inet moat\nflush table inet moat\n"),
            "{r}"
        );
        assert!(r.contains("meta skuid 990 meta l4proto tcp counter reject with tcp reset"));
        assert!(r.contains("meta skuid 990 counter reject with icmpx admin-prohibited"));
        // No interface match: loopback is refused too.
        assert!(!r.contains("oif"), "{r}");
    }

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
    }
}
