//! `moat-launch`: the elevated tier's setuid-root launcher.
//!
//! moat starts it with the command's standard streams, the control socket
//! as descriptor 3 and the descriptor channel as 4 (see
//! `moat_linux::launch`). It reads one request, checks the caller and every
//! value before acting as root, builds the sandbox with the same code as
//! the unelevated tier (minus the user namespace, plus idmapped mounts and
//! the switch to the sandbox account), reports the start, waits, and
//! reports the end. Anything it refuses, it refuses with a reason.
//!
//! Its own safety rests on: ending the run when moat goes away (its control
//! socket hangs up; the launcher outlives moat only to kill the run and
//! remove its cgroups), owning
//! no descriptor but its five, trusting nothing in the request beyond what
//! `moat_launch::validate` proves, and taking the sandbox account, the
//! person's name and home from /etc/passwd, never from the request.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::Duration;

use moat_launch::request::{self, Account, Kind, Network, Request};
use moat_launch::sys;
use moat_launch::validate::{self, Caller};
use moat_linux::launch::{reply, CHANNEL_FD, CONTROL_FD};
use moat_linux::setup::{accounts, nft};
use moat_linux::{Elevation, Isolation, SpawnRequest, StdioSpec, WaitOptions};
use moat_policy::view::{Denied, FsView, Protected, Writable};
use moat_policy::{EntryKind, NetworkMode, Source, Sourced};

/// The status of a run the launcher refused (as moat's own setup
/// failures).
const REFUSED: i32 = 125;

fn main() {
    sys::close_from(5);
    let code = match (sys::adopt(CONTROL_FD), sys::adopt(CHANNEL_FD)) {
        (Some(control), Some(channel)) => {
            sys::new_session();
            match launch(&control, &channel) {
                Ok(code) => code,
                Err(reason) => {
                    reply::refuse(&control, &channel, &reason);
                    REFUSED
                }
            }
        }
        _ => {
            eprintln!(
                "moat-launch: this is the launcher of moat's elevated tier; run `moat run --tier \
                 elevated -- COMMAND` instead"
            );
            REFUSED
        }
    };
    std::process::exit(code)
}

fn read_request(control: &OwnedFd) -> Result<Request, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let file = std::fs::File::from(control.try_clone().map_err(|e| e.to_string())?);
    file.take(request::MAX_REQUEST as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading the request: {e}"))?;
    Request::decode(&bytes).map_err(|e| format!("malformed request: {e}"))
}

fn launch(control: &OwnedFd, channel: &OwnedFd) -> Result<i32, String> {
    let req = read_request(control)?;
    let (uid, gid) = sys::caller_ids();
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
    let etc_group =
        std::fs::read_to_string("/etc/group").map_err(|e| format!("/etc/group: {e}"))?;
    let (name, home) = validate::passwd_entry(&passwd, uid)
        .ok_or_else(|| format!("uid {uid} has no entry in /etc/passwd"))?;
    let caller = Caller { uid, gid, name };
    let checked = validate::check(&req, &caller, &etc_group, accounts::USERS_GROUP)
        .map_err(|e| e.to_string())?;

    let account_name = match req.account {
        Account::Offline => accounts::OFFLINE,
        Account::Online => accounts::ONLINE,
    };
    let account = accounts::user_in(&passwd, account_name)
        .filter(accounts::is_ours)
        .ok_or_else(|| {
            format!("the sandbox account {account_name} is missing\nhint: sudo moat setup")
        })?;
    if req.account == Account::Offline && !nft::verified_for_run(account.uid, account_name) {
        return Err(format!(
            "the firewall rules for {account_name} (nftables table {}) are missing or changed, \
             so its traffic would not be refused\nhint: sudo moat setup",
            nft::TABLE
        ));
    }

    let facts = moat_policy::HostFacts {
        home: PathBuf::from(&home),
        cwd: checked.cwd.clone(),
        env: Vec::new(),
    };
    let mut policy = moat_policy::Settings::new()
        .resolve(&facts, Sourced::new(checked.workspace.clone(), Source::Api))
        .map_err(|e| e.to_string())?;
    policy.network = Sourced::new(
        match req.network {
            Network::Off => NetworkMode::Off,
            Network::Allow => NetworkMode::Allow,
            Network::On => NetworkMode::On,
        },
        Source::Api,
    );
    let limit = |v: Option<u64>| v.map(|v| Sourced::new(v, Source::Api));
    policy.limits = moat_policy::Limits {
        timeout: req
            .timeout_ms
            .map(|t| Sourced::new(Duration::from_millis(t), Source::Api)),
        processes: limit(req.processes),
        memory: limit(req.memory),
        file_size: limit(req.file_size),
        cpu: limit(req.cpu),
    };
    // moat built the environment from its policy already; pass it as is.
    let env: Vec<(OsString, OsString)> = req
        .env
        .iter()
        .filter_map(|e| {
            let at = e.iter().position(|b| *b == b'=')?;
            Some((
                OsString::from_vec(e[..at].to_vec()),
                OsString::from_vec(e[at + 1..].to_vec()),
            ))
        })
        .collect();
    policy.env = moat_policy::EnvPolicy {
        clear: Sourced::default_value(false),
        pass: env
            .iter()
            .map(|(n, _)| Sourced::new(n.to_string_lossy().into_owned(), Source::Api))
            .collect(),
        set: Vec::new(),
    };

    let path = |p: &Vec<u8>| PathBuf::from(std::ffi::OsStr::from_bytes(p));
    let kind = |k: Kind| match k {
        Kind::Dir => EntryKind::Dir,
        Kind::File => EntryKind::File,
        Kind::Other => EntryKind::Other,
    };
    let view = FsView {
        writable: std::iter::once(checked.workspace.clone())
            .chain(checked.writable.iter().cloned())
            .map(|p| Writable {
                path: p,
                source: Source::Api,
            })
            .collect(),
        readable: req.readable.as_ref().map(|r| r.iter().map(path).collect()),
        denied: req
            .deny_read
            .iter()
            .map(|(k, p)| Denied {
                path: path(p),
                kind: kind(*k),
                source: Source::Api,
            })
            .collect(),
        protected: req
            .protected
            .iter()
            .map(|(k, p)| Protected {
                path: path(p),
                kind: kind(*k),
                reason: "kept read-only",
            })
            .collect(),
        pins: req.pins.iter().map(path).collect(),
        ..FsView::default()
    };
    let argv: Vec<OsString> = req
        .argv
        .iter()
        .map(|a| OsString::from_vec(a.clone()))
        .collect();
    let spawn_req = SpawnRequest {
        policy: &policy,
        view: &view,
        host_env: &env,
        program: argv[0].clone(),
        args: argv[1..].to_vec(),
        cwd: checked.cwd.clone(),
        stdio: [StdioSpec::Inherit; 3],
        pty: req.pty,
        isolation: Isolation::Full,
        allow_degraded: false,
        elevation: Some(Elevation {
            account: (account_name.to_string(), account.uid, account.gid),
            caller: (caller.uid, caller.gid),
            home: validate::own_home(home.as_bytes(), &caller),
            pins: Some(PathBuf::from(moat_linux::IDMAP_PINS)),
        }),
    };
    let mut child = moat_linux::spawn(&spawn_req).map_err(|e| e.to_string())?;
    let mut fds: Vec<OwnedFd> = child.take_proxy_listeners();
    let mut raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    if let Some(master) = child.pty_master() {
        raw.push(master);
    }
    let placed = child.cgroup_placed();
    if !reply::started(control, channel, child.id(), &raw, req.pty, placed) {
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
    reply::ended(control, exit);
    // `exit` below skips destructors: the run's cgroups go here.
    child.reap();
    Ok(exit.code())
}
