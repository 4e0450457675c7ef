//! `moat-launch`: the elevated tier's setuid-root launcher.
//!
//! moat starts it with the command's standard streams, the control socket
//! as descriptor 3 and the descriptor channel as 4 (see
//! `moat_linux::launch`). It does four things, in this order:
//!
//! 1. **Sanitize** ([`sanitize`]): before anything else, nothing its caller
//!    controls survives (environment, descriptors, signals, timers,
//!    limits, umask, working directory, core dumps), and it must be
//!    setuid root with the capabilities it needs.
//! 2. **Read** the request: a [`moat_spec::RunSpec`] on the wire, bounded.
//! 3. **Check** ([`check`]): the caller is authorised; the account, its
//!    firewall and the caller's home come from the system, never from the
//!    request; every path is opened by descriptor with the caller's own
//!    file-system permissions.
//! 4. **Execute**: the run is built from those descriptors with the same
//!    code as the unelevated tier (minus the user namespace, plus idmapped
//!    mounts and the switch to the sandbox account); it reports the
//!    start, waits, and reports the end.
//!
//! Anything it refuses, it refuses with a reason. Every file it creates or
//! changes as root is in a root-owned directory it opened and checked
//! (`moat_linux::rootdir`). If moat goes away (its control socket hangs
//! up) it kills the run and removes its cgroups; if it is killed itself,
//! the sandbox dies with it and the next run removes what it left.

mod check;
mod sanitize;
#[allow(unsafe_code)]
mod sys;

use std::os::fd::{AsRawFd, OwnedFd};

use moat_linux::launch::{reply, CHANNEL_FD, CONTROL_FD};
use moat_linux::{Launch, WaitOptions};
use moat_spec::wire;

use sanitize::{Caller, Stop};

/// The status of a run the launcher refused (as moat's own setup
/// failures).
const REFUSED: i32 = 125;

fn main() {
    let code = match sanitize::process() {
        Err(Stop::NotFromMoat) => {
            eprintln!(
                "moat-launch: this is the launcher of moat's elevated tier; run `moat run --tier \
                 elevated -- COMMAND` instead"
            );
            REFUSED
        }
        // Before its channels were found to be moat's, there is only
        // stderr to say it on.
        Err(Stop::Refused(reason)) if !sanitize::has_channels() => {
            eprintln!("moat-launch: {reason}");
            REFUSED
        }
        Err(Stop::Refused(reason)) => {
            let (control, channel) = channels();
            reply::refuse(&control, &channel, &reason);
            REFUSED
        }
        Ok(caller) => {
            let (control, channel) = channels();
            match launch(&control, &channel, &caller) {
                Ok(code) => code,
                Err(reason) => {
                    reply::refuse(&control, &channel, &reason);
                    REFUSED
                }
            }
        }
    };
    std::process::exit(code)
}

/// Takes descriptors 3 and 4, which sanitizing found to be moat's sockets;
/// once, in `main`.
fn channels() -> (OwnedFd, OwnedFd) {
    (sys::adopt(CONTROL_FD), sys::adopt(CHANNEL_FD))
}

/// Reads the whole request (moat closes its side after it), at most one
/// byte more than a request may be.
fn read_request(control: &OwnedFd) -> Result<moat_spec::RunSpec, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let file = std::fs::File::from(control.try_clone().map_err(|e| e.to_string())?);
    file.take(wire::MAX_REQUEST as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading the request: {e}"))?;
    wire::decode(&bytes).map_err(|e| format!("malformed request: {e}"))
}

fn launch(control: &OwnedFd, channel: &OwnedFd, caller: &Caller) -> Result<i32, String> {
    let spec = read_request(control)?;
    let elevation = check::check(&spec, caller)?;
    // It waits below as soon as moat has the descriptors.
    let launch = Launch {
        waits_at_once: true,
        ..Launch::default()
    };
    let mut child =
        moat_linux::spawn_elevated(&spec, &launch, &elevation).map_err(|e| e.to_string())?;
    let mut fds: Vec<OwnedFd> = child.take_proxy_listeners();
    let mut raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    if let Some(master) = child.pty_master() {
        raw.push(master);
    }
    let placed = child.cgroup_placed();
    if !reply::started(control, channel, child.id(), &raw, spec.pty, placed) {
        child.kill();
        child.reap();
        return Err("moat went away while the run started".into());
    }
    fds.clear();
    let waited = child.wait(WaitOptions {
        forward_signals: true,
        relay_pty: false,
        hangup: Some(control.as_raw_fd()),
    });
    let exit = match waited {
        Ok((exit, _)) => exit,
        Err(e) => {
            child.kill();
            child.reap();
            return Err(e.to_string());
        }
    };
    let observed = child.observed();
    reply::ended(control, channel, exit, &observed);
    // `exit` below skips destructors: the run's cgroups go here.
    child.reap();
    Ok(exit.code())
}
