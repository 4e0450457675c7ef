//! `moat setup`, `moat setup --check`, `moat setup --remove`.

use anyhow::Result;
use moat_setup as setup;

use crate::cli::SetupArgs;

pub fn setup(args: &SetupArgs) -> Result<u8> {
    if args.check {
        let findings = setup::check();
        for f in &findings {
            println!(
                "{:<8} {:<22} {}",
                if f.ok { "ok" } else { "WRONG" },
                f.what,
                f.detail
            );
        }
        let bad = findings.iter().filter(|f| !f.ok).count();
        if bad > 0 {
            println!("{bad} problems: `sudo moat setup` repairs them, `sudo moat setup --remove` removes the rest");
            return Ok(1);
        }
        println!("the elevated tier is set up");
        return Ok(0);
    }
    let done = if args.remove {
        setup::remove()
    } else {
        setup::setup(args.user.as_deref())
    }
    .map_err(|e| anyhow::anyhow!(e))?;
    for line in done {
        println!("moat setup: {line}");
    }
    Ok(0)
}
