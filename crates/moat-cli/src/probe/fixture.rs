//! The attacker's side of `moat probe`: a temporary area outside the
//! sandbox with a home directory full of canaries, a workspace with
//! repositories, listeners that record every contact, and a host process to
//! attack. Everything lives under one directory that is removed at the end.

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

/// Counts contacts with a listener.
#[derive(Debug, Clone, Default)]
pub struct Hits(Arc<AtomicUsize>);

impl Hits {
    pub fn get(&self) -> usize {
        // In-flight contacts land within a few milliseconds on loopback.
        std::thread::sleep(Duration::from_millis(30));
        self.0.load(Ordering::SeqCst)
    }
}

/// A listener the probes try to reach.
#[derive(Debug, Clone)]
pub struct Listener {
    pub addr: String,
    pub port: String,
    pub hits: Hits,
}

/// The attacker's side, shared by every probe of one `moat probe` run.
#[derive(Debug)]
pub struct Fixture {
    pub root: PathBuf,
    /// moat-probe, copied into the area: where moat is installed may be
    /// hidden inside the sandbox (a build under /tmp is).
    pub probe_exe: PathBuf,
    pub home: PathBuf,
    pub ws: PathBuf,
    pub outside: PathBuf,
    pub tcp4: Listener,
    pub tcp6: Listener,
    pub udp4: Listener,
    pub udp6: Listener,
    pub dns: Listener,
    pub unix_path: PathBuf,
    pub unix_hits: Hits,
    pub abstract_name: String,
    pub abstract_hits: Hits,
    /// A socket where a terminal multiplexer keeps its server, in /tmp.
    pub tmux_dir: PathBuf,
    pub tmux_path: PathBuf,
    pub tmux_hits: Hits,
    /// A process outside the sandbox, with a secret in its environment.
    pub host_process: Child,
    pub is_root: bool,
    /// Paths outside the area that probes try to create on the host.
    pub tmp_canary: PathBuf,
    pub cron_canary: PathBuf,
    /// The base directory, when this run created it (removed if empty).
    made_base: Option<PathBuf>,
}

impl Listener {
    /// `addr` as bound ("127.0.0.1:0", "[::1]:0"): the host part is what
    /// the victim connects to.
    fn new(addr: &str, port: String, hits: Hits) -> Listener {
        let host = addr.rsplit_once(':').map(|(a, _)| a).unwrap_or(addr);
        Listener {
            addr: host.trim_matches(['[', ']']).to_string(),
            port,
            hits,
        }
    }
}

fn tcp(addr: &str) -> Result<Listener> {
    let l = TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
    let port = l.local_addr()?.port().to_string();
    let hits = Hits::default();
    let h = hits.clone();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            h.0.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 64];
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = s.read(&mut buf);
        }
    });
    Ok(Listener::new(addr, port, hits))
}

fn udp(addr: &str) -> Result<Listener> {
    let s = UdpSocket::bind(addr).with_context(|| format!("listening on {addr}"))?;
    let port = s.local_addr()?.port().to_string();
    let hits = Hits::default();
    let h = hits.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while s.recv_from(&mut buf).is_ok() {
            h.0.fetch_add(1, Ordering::SeqCst);
        }
    });
    Ok(Listener::new(addr, port, hits))
}

/// A process to attack, with a secret in its environment.
fn host_process() -> Result<Child> {
    Command::new("sleep")
        .arg("600")
        .env("MOAT_PROBE_SECRET", "moat-canary")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the host process to attack (sleep)")
}

fn unix(l: UnixListener) -> Hits {
    let hits = Hits::default();
    let h = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            h.0.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    hits
}

#[cfg(target_os = "linux")]
fn abstract_listener(name: &str) -> Result<UnixListener> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    Ok(UnixListener::bind_addr(&addr)?)
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Where the area goes: under the person's cache directory, because /tmp
/// and /var/tmp are private inside the sandbox and a home or workspace
/// there would hide every canary.
fn base_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("MOAT_PROBE_DIR") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| Path::new(d).is_absolute()) {
        return Ok(PathBuf::from(d).join("moat"));
    }
    let home = std::env::var_os("HOME")
        .context("HOME is not set; set MOAT_PROBE_DIR to a directory moat probe may use")?;
    Ok(PathBuf::from(home).join(".cache").join("moat"))
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("git")
        .args(["-c", "init.defaultBranch=main", "-c", "core.hooksPath="])
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("running git (moat probe needs git for its repository probes)")?;
    anyhow::ensure!(
        out.status.success(),
        "git {:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

impl Fixture {
    pub fn new(probe_exe: &Path) -> Result<Fixture> {
        let base = base_dir()?;
        let made_base = !base.exists();
        std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
        let root = base.join(format!("probe-{}", std::process::id()));
        if root.exists() {
            std::fs::remove_dir_all(&root)
                .with_context(|| format!("removing a stale {}", root.display()))?;
        }
        std::fs::create_dir(&root).with_context(|| format!("creating {}", root.display()))?;
        let home = root.join("home");
        let ws = root.join("ws");
        let outside = root.join("outside");
        for d in [&home, &ws, &outside] {
            std::fs::create_dir(d)?;
        }
        std::fs::create_dir(root.join("bin"))?;
        let probe_copy = root.join("bin").join("moat-probe");
        std::fs::copy(probe_exe, &probe_copy).context("copying moat-probe into the probe area")?;
        // The home directory: secrets to read, files run later to write.
        for (rel, text) in [
            (".ssh/id_ed25519", "moat-canary-ssh-key\n"),
            (".ssh/authorized_keys", "ssh-ed25519 AAAA moat-canary\n"),
            (
                ".aws/credentials",
                "[default]\naws_secret_access_key=moat-canary\n",
            ),
            (
                ".config/gh/hosts.yml",
                "github.com:\n  oauth_token: moat-canary\n",
            ),
            (".netrc", "machine example.com password moat-canary\n"),
            (".git-credentials", "https://u:moat-canary@example.com\n"),
            (".mozilla/firefox/p/logins.json", "{\"moat\":\"canary\"}\n"),
            (".local/share/keyrings/login.keyring", "moat-canary\n"),
            (".bashrc", "# moat canary\n"),
            (".profile", "# moat canary\n"),
            (".gitconfig", "[user]\n\tname = moat canary\n"),
            (".config/autostart/keep", ""),
            (".config/systemd/user/keep", ""),
        ] {
            write(&home.join(rel), text)?;
        }
        write(&outside.join("canary.txt"), "moat-canary\n")?;
        let uid = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap_or(u32::MAX);
        if uid == 0 {
            // A setuid program that makes whoever runs it another account.
            let copy = outside.join("setuid-probe");
            std::fs::copy(probe_exe, &copy).context("copying moat-probe")?;
            std::os::unix::fs::chown(&copy, Some(65534), Some(65534))
                .context("chown of the setuid copy")?;
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755))?;
        }
        // The workspace: a repository with a nested one.
        write(&ws.join("README"), "probe workspace\n")?;
        git(&ws, &["init", "-q", "."])?;
        std::fs::create_dir_all(ws.join("sub"))?;
        git(&ws.join("sub"), &["init", "-q", "."])?;

        let unix_path = outside.join("agent.sock");
        let unix_hits = unix(UnixListener::bind(&unix_path).context("listening on a unix socket")?);
        let abstract_name = format!("moat-probe-{}", std::process::id());
        let abstract_hits =
            unix(abstract_listener(&abstract_name).context("listening on an abstract socket")?);
        let tmux_dir = PathBuf::from(format!(
            "/tmp/moat-probe-tmux-{}-{}",
            uid,
            std::process::id()
        ));
        std::fs::create_dir_all(&tmux_dir)?;
        std::fs::set_permissions(&tmux_dir, std::fs::Permissions::from_mode(0o700))?;
        let tmux_path = tmux_dir.join("default");
        let tmux_hits = unix(UnixListener::bind(&tmux_path).context("listening in /tmp")?);

        let host_process = host_process()?;

        Ok(Fixture {
            tcp4: tcp("127.0.0.1:0")?,
            tcp6: tcp("[::1]:0")?,
            udp4: udp("127.0.0.1:0")?,
            udp6: udp("[::1]:0")?,
            dns: udp("127.0.0.1:0")?,
            root,
            probe_exe: probe_copy,
            home,
            ws,
            outside,
            unix_path,
            unix_hits,
            abstract_name,
            abstract_hits,
            tmux_dir,
            tmux_path,
            tmux_hits,
            host_process,
            is_root: uid == 0,
            made_base: made_base.then(|| base.clone()),
            tmp_canary: PathBuf::from(format!("/tmp/moat-probe-{}-{}", uid, std::process::id())),
            cron_canary: PathBuf::from(format!(
                "/var/spool/cron/crontabs/moat-probe-{}",
                std::process::id()
            )),
        })
    }

    /// What the probes left on the host outside the area (each probe
    /// removes what it creates, so anything here is a failure).
    pub fn leftovers(&self) -> Vec<PathBuf> {
        [&self.tmp_canary, &self.cron_canary]
            .into_iter()
            .filter(|p| p.symlink_metadata().is_ok())
            .cloned()
            .collect()
    }

    pub fn host_pid(&self) -> String {
        self.host_process.id().to_string()
    }

    /// Whether the host process is still running.
    pub fn host_alive(&mut self) -> bool {
        matches!(self.host_process.try_wait(), Ok(None))
    }

    /// Starts a new host process when a control killed the old one.
    pub fn revive(&mut self) -> Result<()> {
        if !self.host_alive() {
            self.host_process = host_process()?;
        }
        Ok(())
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.host_process.kill();
        let _ = self.host_process.wait();
        let _ = std::fs::remove_dir_all(&self.tmux_dir);
        let _ = std::fs::remove_file(&self.tmp_canary);
        let _ = std::fs::remove_file(&self.cron_canary);
        // Probes may leave read-only modes behind.
        let _ = Command::new("chmod")
            .args(["-R", "u+rwX"])
            .arg(&self.root)
            .status();
        let _ = std::fs::remove_dir_all(&self.root);
        if let Some(base) = &self.made_base {
            let _ = std::fs::remove_dir(base);
        }
    }
}
