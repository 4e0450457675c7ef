//! Terminal ioctls that let a sandboxed process type into, or reconfigure,
//! a terminal it shares with the user.

use crate::action::{Action, Args, Fail, Outcome};
use crate::sys;

#[rustfmt::skip]
pub const ACTIONS: &[Action] = &[
    Action { name: "tiocsti", usage: "FD [high]", help: "ioctl TIOCSTI pushing '#' into FD's input; with `high`, request 0x5412|1<<32 via the raw syscall", run: tiocsti },
    Action { name: "tioclinux", usage: "FD", help: "ioctl TIOCLINUX with subcode 0", run: tioclinux },
    Action { name: "tiocsetd", usage: "FD", help: "ioctl TIOCSETD to N_HDLC (13); the old line discipline is restored on success", run: tiocsetd },
];

const N_HDLC: libc::c_int = 13;

fn fd(args: &Args) -> Result<libc::c_int, Fail> {
    args.number(0, "FD")
}

fn tiocsti(args: &Args) -> Outcome {
    let fd = fd(args)?;
    let high = match args.optional(1) {
        None => false,
        Some(word) if word == "high" => true,
        Some(word) => {
            return Err(Fail::Usage(format!(
                "tiocsti: second argument must be `high`, got {word:?}"
            )))
        }
    };
    if high {
        // The kernel truncates the request to 32 bits; a seccomp filter that
        // compares all 64 bits would not recognise this value as TIOCSTI.
        let request = sys::tiocsti_high_bits(fd, b'#')?;
        Ok(format!("request={request:#x}"))
    } else {
        sys::tiocsti(fd, b'#')?;
        Ok(String::new())
    }
}

fn tioclinux(args: &Args) -> Outcome {
    let fd = fd(args)?;
    sys::tioclinux_subcode0(fd)?;
    Ok(String::new())
}

fn tiocsetd(args: &Args) -> Outcome {
    let fd = fd(args)?;
    let previous = sys::tiocgetd(fd).ok();
    sys::tiocsetd(fd, N_HDLC)?;
    let restored = match previous {
        Some(ldisc) => match sys::tiocsetd(fd, ldisc) {
            Ok(()) => format!("restored ldisc {ldisc}"),
            Err(e) => format!("restoring ldisc {ldisc} failed: {e}"),
        },
        None => "previous ldisc unknown, not restored".to_string(),
    };
    Ok(format!("set N_HDLC; {restored}"))
}
