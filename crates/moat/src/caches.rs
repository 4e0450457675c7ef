//! moat's store of tool-cache layers, one directory per person:
//! `$XDG_STATE_HOME/moat/caches` (`~/.local/state/moat/caches`), a
//! directory per layer holding `shared/` and `runs/<run>/{upper,work}`.
//! Inside a sandbox `~/.cargo`, `~/.npm`, `~/.cache`, ... show the
//! person's own cache at the bottom (read-only), `shared` above it, and
//! the run's own `upper` on top, where everything it writes lands. The
//! person's caches are never written, and nothing outside a sandbox looks
//! in the store, so nothing a sandboxed command downloaded or changed can
//! reach an unsandboxed build.
//!
//! Runs at the same time each write their own layer. Every run holds a
//! shared lock on the store while it lasts; when it ends, the run whose
//! end leaves the store to nobody else moves every finished run's layer
//! into `shared` (`moat_linux::layers::merge`), under the lock held
//! exclusively, so `shared` never changes beneath a mounted overlay. A
//! run that did not end by itself (killed, timed out) is thrown away: what
//! it wrote may be half done. `moat cache clear` takes the lock
//! exclusively too.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use moat_policy::caches::{CacheLayer, CachePlan, TOOL_CACHES};
use moat_spec::Cache;

/// The store of `home`, given the environment's `XDG_STATE_HOME`.
pub fn store_root(home: &Path, xdg_state_home: Option<&Path>) -> PathBuf {
    xdg_state_home
        .filter(|p| p.is_absolute())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| home.join(".local/state"))
        .join("moat/caches")
}

/// The store of this process's person.
pub fn this_store() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    let xdg = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from);
    Some(store_root(&home, xdg.as_deref()))
}

/// Whether a program is on this process's PATH.
pub fn installed(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|d| {
            std::fs::metadata(d.join(program)).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
        })
    })
}

fn make_dir(path: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Marks a run's layer as ended by itself: only those are merged.
const DONE: &str = "done";

fn lock_file(store: &Path) -> std::io::Result<File> {
    make_dir(store)?;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(store.join(".lock"))
}

/// A run's hold on the store, and its layers.
#[derive(Debug)]
pub struct Held {
    store: PathBuf,
    lock: Option<File>,
    /// This run's directory of each layer.
    runs: Vec<PathBuf>,
}

impl Held {
    /// The run is over: with `ended` (the command ended by itself) its
    /// layers are kept for merging, else thrown away; then, if no other
    /// run holds the store, every finished run's layers are merged into
    /// the shared ones. What went wrong, for the run's notes.
    pub fn finish(mut self, ended: bool) -> Vec<String> {
        let mut notes = Vec::new();
        for run in &self.runs {
            let kept = ended && std::fs::write(run.join(DONE), "").is_ok();
            if !kept {
                let _ = moat_linux::layers::remove_tree(run);
            }
        }
        // Give up the shared hold, then try for the store alone.
        let Some(lock) = self.lock.take() else {
            return notes;
        };
        drop(lock);
        if let Ok(file) = lock_file(&self.store) {
            if file.try_lock().is_ok() {
                notes.extend(merge_all(&self.store));
            }
        }
        notes
    }
}

/// Merges the finished runs of every layer into its shared layer, and
/// throws away the runs whose moat is gone without finishing. Under the
/// store's lock, held exclusively.
fn merge_all(store: &Path) -> Vec<String> {
    let mut notes = Vec::new();
    for (_, name, _) in TOOL_CACHES {
        let layer = store.join(name);
        let Ok(runs) = std::fs::read_dir(layer.join("runs")) else {
            continue;
        };
        for run in runs.flatten().map(|e| e.path()) {
            if run.join(DONE).exists() {
                if let Err(e) = moat_linux::layers::merge(&run.join("upper"), &layer.join("shared"))
                {
                    notes.push(format!(
                        "the cache layer of {} could not be kept for later runs: {e}",
                        run.display()
                    ));
                }
                let _ = moat_linux::layers::remove_tree(&run);
            } else if !alive(&run) {
                let _ = moat_linux::layers::remove_tree(&run);
            }
        }
    }
    notes
}

/// Whether the moat that made the run directory `run` (`<pid>-<nonce>`) is
/// still there.
fn alive(run: &Path) -> bool {
    let pid = run
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('-').next())
        .and_then(|p| p.parse::<u32>().ok());
    match pid {
        Some(p) => Path::new("/proc").join(p.to_string()).exists(),
        None => false,
    }
}

/// A name for this run's layers, unique on this machine.
fn run_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos:x}", std::process::id())
}

/// The layers ready for a run: each cache's directory exists (an empty one
/// is made for a missing cache of an installed tool), is the person's own,
/// and has a shared layer and this run's own in the store. Layers that
/// cannot be made are left out with a note (the cache then stays
/// read-only). The store is held until [`Held::finish`].
pub fn prepare(
    plan: &CachePlan,
    store: &Path,
    notes: &mut Vec<String>,
) -> (Vec<Cache>, Option<Held>) {
    notes.extend(plan.notes.iter().cloned());
    if plan.layers.is_empty() {
        return (Vec::new(), None);
    }
    // Waits while a run ending merges, or a clear clears.
    let lock = match lock_file(store).and_then(|f| f.lock_shared().map(|()| f)) {
        Ok(f) => f,
        Err(e) => {
            notes.push(format!(
                "the cache store {} cannot be used ({e}), so tool caches stay read-only in this run",
                store.display()
            ));
            return (Vec::new(), None);
        }
    };
    // Our own uid, as the owner of the file just made.
    let me = std::fs::metadata(store.join(".lock")).map(|m| m.uid()).ok();
    let run = run_name();
    let mut held = Held {
        store: store.to_path_buf(),
        lock: Some(lock),
        runs: Vec::new(),
    };
    let mut caches = Vec::new();
    for layer in &plan.layers {
        match ready(layer, store, &run, me) {
            Ok(c) => {
                held.runs.push(c.run.clone());
                caches.push(c);
            }
            Err(why) => notes.push(format!(
                "{} gets no cache layer ({why}) and stays read-only",
                layer.at.display()
            )),
        }
    }
    (caches, Some(held))
}

fn ready(layer: &CacheLayer, store: &Path, run: &str, me: Option<u32>) -> Result<Cache, String> {
    if layer.missing {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&layer.at)
            .map_err(|e| format!("making it: {e}"))?;
    }
    let meta = std::fs::symlink_metadata(&layer.at).map_err(|e| e.to_string())?;
    if !meta.file_type().is_dir() {
        return Err("it is not a directory".into());
    }
    if Some(meta.uid()) != me {
        return Err(format!("it belongs to uid {}, not to you", meta.uid()));
    }
    let dir = store.join(layer.name);
    let cache = Cache {
        at: layer.at.clone(),
        shared: dir.join("shared"),
        run: dir.join("runs").join(run),
    };
    for d in [&cache.shared, &cache.upper(), &cache.work()] {
        make_dir(d).map_err(|e| format!("making {}: {e}", d.display()))?;
    }
    // The top directories are what tools see there: with the mode the
    // person's cache has.
    let mode = std::fs::Permissions::from_mode(meta.mode() & 0o7777);
    for d in [&cache.shared, &cache.upper()] {
        std::fs::set_permissions(d, mode.clone())
            .map_err(|e| format!("setting the mode of {}: {e}", d.display()))?;
    }
    Ok(cache)
}

/// One layer as `moat cache` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub name: String,
    /// Where tools see it (under the home directory).
    pub at: String,
    pub store: PathBuf,
    pub bytes: u64,
    pub files: u64,
}

fn size(dir: &Path) -> (u64, u64) {
    let (mut bytes, mut files) = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => {
                    bytes += m.len();
                    files += 1;
                }
                Err(_) => {}
            }
        }
    }
    (bytes, files)
}

/// Every layer the store holds, with what it holds.
pub fn list(store: &Path) -> Vec<Shown> {
    TOOL_CACHES
        .iter()
        .filter_map(|(rel, name, _)| {
            let dir = store.join(name);
            dir.is_dir().then(|| {
                let (bytes, files) = size(&dir);
                Shown {
                    name: name.to_string(),
                    at: format!("~/{rel}"),
                    store: dir,
                    bytes,
                    files,
                }
            })
        })
        .collect()
}

/// Why a layer could not be cleared.
#[derive(Debug, thiserror::Error)]
pub enum ClearError {
    #[error("no cache layer is named {0} (the names are {1})")]
    Unknown(String, String),
    #[error("a sandboxed run is using the cache store {0}; clear it when no run is going on")]
    Busy(PathBuf),
    #[error("clearing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Clears the layer `name` (every layer with `None`): what sandboxed runs
/// wrote to that cache is gone, and the next run starts again from the
/// person's own cache. The names cleared.
pub fn clear(store: &Path, name: Option<&str>) -> Result<Vec<String>, ClearError> {
    let names: Vec<&str> = TOOL_CACHES.iter().map(|(_, n, _)| *n).collect();
    let chosen: Vec<&str> = match name {
        Some(n) if names.contains(&n) => vec![n],
        Some(n) => return Err(ClearError::Unknown(n.to_string(), names.join(", "))),
        None => names,
    };
    let io = |source| ClearError::Io {
        path: store.to_path_buf(),
        source,
    };
    let held = lock_file(store).map_err(io)?;
    // A run that just ended may be merging its layers: that takes moments.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        match held.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(ClearError::Busy(store.to_path_buf()))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
    }
    let mut cleared = Vec::new();
    for n in chosen {
        let dir = store.join(n);
        if dir.exists() {
            moat_linux::layers::remove_tree(&dir).map_err(|source| ClearError::Io {
                path: dir.clone(),
                source,
            })?;
            cleared.push(n.to_string());
        }
    }
    Ok(cleared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_follows_xdg_state_home() {
        let home = Path::new("/home/u");
        assert_eq!(
            store_root(home, None),
            PathBuf::from("/home/u/.local/state/moat/caches")
        );
        assert_eq!(
            store_root(home, Some(Path::new("/s"))),
            PathBuf::from("/s/moat/caches")
        );
        assert_eq!(
            store_root(home, Some(Path::new("rel"))),
            PathBuf::from("/home/u/.local/state/moat/caches")
        );
    }

    /// Layers are made ready, merged when the run ends, listed with their
    /// size, and cleared; an unknown name is refused, and clearing waits
    /// for no run.
    #[test]
    fn layers_are_made_merged_listed_and_cleared() {
        let base = std::env::temp_dir().join(format!("moat-caches-{}", std::process::id()));
        let _ = moat_linux::layers::remove_tree(&base);
        let store = base.join("store");
        let plan = CachePlan {
            layers: vec![CacheLayer {
                name: "npm",
                at: base.join("home/.npm"),
                missing: true,
            }],
            notes: Vec::new(),
        };
        let mut notes = Vec::new();
        let (caches, held) = prepare(&plan, &store, &mut notes);
        assert_eq!(caches.len(), 1, "{notes:?}");
        assert!(base.join("home/.npm").is_dir(), "the missing cache is made");
        let c = &caches[0];
        assert!(c.shared.is_dir() && c.upper().is_dir() && c.work().is_dir());
        let _ = std::fs::write(c.upper().join("f"), "12345");
        assert!(matches!(
            clear(&store, Some("npm")),
            Err(ClearError::Busy(_))
        ));
        // A second run, killed: its layer is thrown away.
        let (other, other_held) = prepare(&plan, &store, &mut notes);
        let _ = std::fs::write(other[0].upper().join("half"), "x");
        if let Some(h) = other_held {
            assert!(h.finish(false).is_empty());
        }
        if let Some(h) = held {
            assert!(h.finish(true).is_empty());
        }
        assert_eq!(
            std::fs::read_to_string(c.shared.join("f")).ok().as_deref(),
            Some("12345")
        );
        assert!(!c.shared.join("half").exists());
        assert!(!c.run.exists() && !other[0].run.exists());
        let shown = list(&store);
        assert_eq!(shown.len(), 1);
        assert_eq!((shown[0].bytes, shown[0].files), (5, 1));
        assert!(matches!(
            clear(&store, Some("nosuch")),
            Err(ClearError::Unknown(..))
        ));
        assert_eq!(clear(&store, None).ok(), Some(vec!["npm".to_string()]));
        assert!(list(&store).is_empty());
        let _ = moat_linux::layers::remove_tree(&base);
    }

    /// A cache that is not the person's own gets no layer, with the reason.
    #[test]
    fn a_cache_of_someone_elses_gets_no_layer() {
        let base = std::env::temp_dir().join(format!("moat-caches-owner-{}", std::process::id()));
        let _ = std::fs::create_dir_all(base.join(".npm"));
        let layer = CacheLayer {
            name: "npm",
            at: base.join(".npm"),
            missing: false,
        };
        let got = ready(&layer, &base.join("store"), "1-1", Some(u32::MAX - 7));
        assert!(
            got.as_ref().is_err_and(|e| e.contains("not to you")),
            "{got:?}"
        );
        let _ = moat_linux::layers::remove_tree(&base);
    }
}
