//! The firewall rules of the elevated tier: one nftables table owned by
//! moat, in which the offline account's packets are refused on every
//! interface, loopback included. Refused rather than dropped, so a program
//! gets an error at once instead of hanging in connect().

use std::io::Write;
use std::process::Stdio;

pub use moat_linux::firewall::{list, listing_is_complete, nft};
pub use moat_spec::install::NFT_TABLE as TABLE;

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

/// Whether the nft tool runs and the kernel has nf_tables.
pub fn available() -> Result<(), String> {
    if !std::path::Path::new(moat_spec::install::NFT).exists() {
        return Err(format!(
            "the nft tool is missing ({}): install it with `apt install nftables`",
            moat_spec::install::NFT
        ));
    }
    match nft(&["list", "tables"]).output() {
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
    let mut child = nft(&["-f", "-"])
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
}
