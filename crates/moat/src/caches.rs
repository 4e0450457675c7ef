//! moat's store of tool-cache layers, one directory per person:
//! `$XDG_STATE_HOME/moat/caches` (`~/.local/state/moat/caches`).
//! Inside a sandbox `~/.cargo`, `~/.npm`, `~/.cache`, ... show the
//! person's own cache at the bottom (read-only), what earlier sandboxed
//! runs fetched (`<layer>/shared`) above it, and the run's own `upper` on
//! top, where everything it writes lands. The person's caches are never
//! written, and nothing outside a sandbox looks in the store, so nothing a
//! sandboxed command downloaded or changed can reach an unsandboxed build.
//!
//! ```text
//! <layer>/shared/             merged, read-only under every run
//! slots/<n>/<layer>/upper/    a run's own writes (the overlay's upper)
//! slots/<n>/<layer>/work/     the overlay's scratch directory
//! slots/<n>/<layer>/done      set when a run's writes wait to be merged
//! slots/<n>.lock              held by the run using slot n
//! <layer>/direct/             the fallback without layers (see
//!                             [`prepare_direct`])
//! .lock                       shared by runs, exclusive to merge or clear
//! ```
//!
//! Runs at the same time each use a slot of their own. Slots are kept and
//! reused, because on a journalled disk making and removing directories
//! costs more than the rest of a run's cache layers together. When a run
//! ends, a slot it wrote nothing to is simply free again; one it wrote to
//! is marked `done`, and the run whose end leaves the store to nobody else
//! merges every `done` slot into `shared` (`moat_linux::layers::merge`),
//! under the store's lock held exclusively, so `shared` never changes
//! beneath a mounted overlay. What a run that did not end by itself wrote
//! (killed, timed out) is thrown away: it may be half done. `moat cache
//! clear` takes the store's lock exclusively too.

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

/// Marks a slot's layer whose writes wait to be merged.
const DONE: &str = "done";

/// How many runs at the same time may have cache layers.
const MAX_SLOTS: usize = 64;

fn open_lock(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

fn lock_file(store: &Path) -> std::io::Result<File> {
    make_dir(store)?;
    open_lock(&store.join(".lock"))
}

/// Whether the directory `dir` has anything in it.
fn has_entries(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

/// Empties the directory `dir`, keeping it.
fn empty(dir: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if std::fs::symlink_metadata(&p)?.is_dir() {
            moat_linux::layers::remove_tree(&p)?;
        } else {
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}

/// A run's hold on the store and on its slot, and its layers.
#[derive(Debug)]
pub struct Held {
    store: PathBuf,
    lock: Option<File>,
    slot: Option<File>,
    /// The slot's directory of each of the run's layers.
    layers: Vec<PathBuf>,
}

impl Held {
    /// The run is over: with `ended` (the command ended by itself) what it
    /// wrote is kept for merging, else thrown away; then, with something
    /// to merge and no other run holding the store, every `done` slot is
    /// merged into the shared layers. What went wrong, for the run's
    /// notes.
    pub fn finish(mut self, ended: bool) -> Vec<String> {
        let mut notes = Vec::new();
        let mut pending = false;
        // Most runs write nothing to a cache: their slot is free at once.
        for layer in &self.layers {
            let upper = layer.join("upper");
            if !has_entries(&upper) {
                continue;
            }
            if ended && std::fs::write(layer.join(DONE), "").is_ok() {
                pending = true;
            } else if let Err(e) = empty(&upper) {
                notes.push(format!("clearing {}: {e}", upper.display()));
            }
        }
        drop(self.slot.take());
        drop(self.lock.take());
        if pending {
            if let Ok(file) = lock_file(&self.store) {
                if file.try_lock().is_ok() {
                    notes.extend(merge_all(&self.store));
                }
            }
        }
        notes
    }
}

/// The slots of the store, by number.
fn slots(store: &Path) -> Vec<PathBuf> {
    (0..MAX_SLOTS)
        .map(|n| store.join("slots").join(n.to_string()))
        .take_while(|d| d.is_dir())
        .collect()
}

/// Merges every `done` slot's layers into the shared ones. Under the
/// store's lock, held exclusively: no run is using a slot or a shared
/// layer.
fn merge_all(store: &Path) -> Vec<String> {
    let mut notes = Vec::new();
    for slot in slots(store) {
        for (_, name, _) in TOOL_CACHES {
            let layer = slot.join(name);
            if !layer.join(DONE).exists() {
                continue;
            }
            let upper = layer.join("upper");
            let shared = store.join(name).join("shared");
            let merged =
                make_dir(&shared).and_then(|()| moat_linux::layers::merge(&upper, &shared));
            if let Err(e) = merged {
                notes.push(format!(
                    "what a run wrote to the {name} cache could not be kept for later runs: {e}"
                ));
            }
            // Merged or not, the slot is free again.
            let _ = empty(&upper);
            let _ = std::fs::remove_file(layer.join(DONE));
        }
    }
    notes
}

/// The overlays are volatile (`moat_linux::sys::mount`), and overlayfs
/// refuses to mount over a work directory that still holds the marker an
/// earlier volatile mount left in it. Every directory on the way has mode
/// 0, as overlayfs makes them; their owner may open them again.
fn unmark_volatile(work: &Path) {
    let mut dir = work.to_path_buf();
    for part in ["work", "incompat", "volatile"] {
        dir.push(part);
        if std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).is_err() {
            return;
        }
    }
    let _ = std::fs::remove_file(dir.join("dirty"));
    // An empty `incompat` is no obstacle: overlayfs removes it itself.
    let _ = std::fs::remove_dir(&dir);
}

/// Takes a free slot: one no run holds and whose layers wait for no merge
/// (what a killed run left there is thrown away).
fn take_slot(store: &Path, names: &[&str]) -> std::io::Result<(File, PathBuf)> {
    for n in 0..MAX_SLOTS {
        let dir = store.join("slots").join(n.to_string());
        make_dir(&dir)?;
        let lock = open_lock(&store.join("slots").join(format!("{n}.lock")))?;
        if lock.try_lock().is_err() {
            continue;
        }
        if names.iter().any(|name| dir.join(name).join(DONE).exists()) {
            continue;
        }
        for name in names {
            let upper = dir.join(name).join("upper");
            if has_entries(&upper) {
                empty(&upper)?;
            }
            unmark_volatile(&dir.join(name).join("work"));
        }
        return Ok((lock, dir));
    }
    Err(std::io::Error::other(format!(
        "all {MAX_SLOTS} slots are in use or wait to be merged"
    )))
}

/// The layers ready for a run: each cache's directory exists (an empty one
/// is made for a missing cache of an installed tool) and is the person's
/// own, and it has a shared layer and the run's own, in a slot of the
/// store. Layers that cannot be made are left out with a note (the cache
/// then stays read-only). The store is held until [`Held::finish`].
pub fn prepare(
    plan: &CachePlan,
    store: &Path,
    notes: &mut Vec<String>,
) -> (Vec<Cache>, Option<Held>) {
    notes.extend(plan.notes.iter().cloned());
    if plan.layers.is_empty() {
        return (Vec::new(), None);
    }
    let unusable = |notes: &mut Vec<String>, e: std::io::Error| {
        notes.push(format!(
            "the cache store {} cannot be used ({e}), so tool caches stay read-only in this run",
            store.display()
        ));
        (Vec::new(), None)
    };
    // Waits while a run that ended merges, or a clear clears.
    let lock = match lock_file(store).and_then(|f| f.lock_shared().map(|()| f)) {
        Ok(f) => f,
        Err(e) => return unusable(notes, e),
    };
    let names: Vec<&str> = plan.layers.iter().map(|l| l.name).collect();
    let (slot_lock, slot) = match take_slot(store, &names) {
        Ok(s) => s,
        Err(e) => return unusable(notes, e),
    };
    // Our own uid, as the owner of the file just made.
    let me = std::fs::metadata(store.join(".lock")).map(|m| m.uid()).ok();
    let mut held = Held {
        store: store.to_path_buf(),
        lock: Some(lock),
        slot: Some(slot_lock),
        layers: Vec::new(),
    };
    let mut caches = Vec::new();
    for layer in &plan.layers {
        match ready(layer, store, &slot, me) {
            Ok(c) => {
                held.layers.push(c.run.clone());
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

fn ready(layer: &CacheLayer, store: &Path, slot: &Path, me: Option<u32>) -> Result<Cache, String> {
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
    let cache = Cache {
        at: layer.at.clone(),
        shared: store.join(layer.name).join("shared"),
        run: slot.join(layer.name),
    };
    // The top directories are what tools see there: with the mode the
    // person's cache has. Made once, and kept.
    let mode = std::fs::Permissions::from_mode(meta.mode() & 0o7777);
    for top in [cache.shared.clone(), cache.upper()] {
        if std::fs::symlink_metadata(&top).is_ok_and(|m| m.mode() & 0o7777 == meta.mode() & 0o7777)
        {
            continue;
        }
        make_dir(&top).map_err(|e| format!("making {}: {e}", top.display()))?;
        std::fs::set_permissions(&top, mode.clone())
            .map_err(|e| format!("making {}: {e}", top.display()))?;
    }
    let work = cache.work();
    if !work.is_dir() {
        make_dir(&work).map_err(|e| format!("making {}: {e}", work.display()))?;
    }
    Ok(cache)
}

/// Where no layer can be made (the landlock-only mode has no mounts), the
/// fallback: each cache's tool is pointed through its environment at a
/// directory of the store, `<layer>/direct`, writable in the run
/// (`moat_policy::caches::redirect`). The tool starts there from an empty
/// cache, kept for later sandboxed runs like a layer; the person's own
/// cache stays read-only and unused, never written. The variables, the
/// directories to make writable, and the hold on the store (shared, so
/// `moat cache clear` waits for the run).
pub fn prepare_direct(
    plan: &CachePlan,
    store: &Path,
    host: &[(std::ffi::OsString, std::ffi::OsString)],
    notes: &mut Vec<String>,
) -> Redirected {
    notes.extend(plan.notes.iter().cloned());
    let mut out = Redirected::default();
    if plan.layers.is_empty() {
        return out;
    }
    let lock = match lock_file(store).and_then(|f| f.lock_shared().map(|()| f)) {
        Ok(f) => f,
        Err(e) => {
            notes.push(format!(
                "the cache store {} cannot be used ({e}), so tool caches stay read-only in this run",
                store.display()
            ));
            return out;
        }
    };
    let me = std::fs::metadata(store.join(".lock")).map(|m| m.uid()).ok();
    for layer in &plan.layers {
        let dir = store.join(layer.name).join("direct");
        match direct_dir(&dir, me) {
            Ok(()) => {
                link_config(layer, &dir);
                out.env
                    .extend(moat_policy::caches::redirect_env(layer.name, &dir, host));
                out.writable.push(dir);
            }
            Err(why) => notes.push(format!(
                "{} gets no cache of moat's own ({why}) and stays read-only",
                layer.at.display()
            )),
        }
    }
    out.held = Some(Held {
        store: store.to_path_buf(),
        lock: Some(lock),
        slot: None,
        layers: Vec::new(),
    });
    out
}

/// What [`prepare_direct`] gives a run.
#[derive(Debug, Default)]
pub struct Redirected {
    pub env: Vec<(&'static str, std::ffi::OsString)>,
    pub writable: Vec<PathBuf>,
    pub held: Option<Held>,
}

/// Makes `dir` a directory of the person's (`me`). Earlier sandboxed runs
/// could write beside it, so whatever else stands there (a symlink to
/// somewhere else) is removed first.
fn direct_dir(dir: &Path, me: Option<u32>) -> Result<(), String> {
    if let Some(parent) = dir.parent() {
        make_dir(parent).map_err(|e| format!("making {}: {e}", parent.display()))?;
    }
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() && Some(m.uid()) == me => return Ok(()),
        Ok(m) if m.is_dir() => return Err(format!("{} is not yours", dir.display())),
        Ok(_) => {
            std::fs::remove_file(dir).map_err(|e| format!("replacing {}: {e}", dir.display()))?
        }
        Err(_) => {}
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("making {}: {e}", dir.display()))
}

/// Links the person's configuration that the tool reads beside its cache
/// (`~/.cargo/config.toml`) into the redirected directory.
fn link_config(layer: &CacheLayer, dir: &Path) {
    for name in moat_policy::caches::redirect(layer.name).links {
        let theirs = layer.at.join(name);
        let ours = dir.join(name);
        if std::fs::symlink_metadata(&theirs).is_ok() && std::fs::symlink_metadata(&ours).is_err() {
            let _ = std::os::unix::fs::symlink(&theirs, &ours);
        }
    }
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

/// Every layer the store holds, with what it holds (shared and waiting to
/// be merged).
pub fn list(store: &Path) -> Vec<Shown> {
    let slots = slots(store);
    TOOL_CACHES
        .iter()
        .filter_map(|(rel, name, _)| {
            let dir = store.join(name);
            dir.is_dir().then(|| {
                let (mut bytes, mut files) = size(&dir);
                for s in &slots {
                    let (b, f) = size(&s.join(name).join("upper"));
                    bytes += b;
                    files += f;
                }
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
    let slots = slots(store);
    for n in chosen {
        let dirs: Vec<PathBuf> = std::iter::once(store.join(n))
            .chain(slots.iter().map(|s| s.join(n)))
            .filter(|d| d.exists())
            .collect();
        for dir in &dirs {
            moat_linux::layers::remove_tree(dir).map_err(|source| ClearError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        if !dirs.is_empty() {
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

    /// Layers are made ready in a slot, merged when the run ends, listed
    /// with their size, and cleared; runs at once take their own slots; a
    /// killed run's writes are thrown away; an unknown name is refused,
    /// and clearing waits for no run.
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
        // A second run at the same time takes another slot; it is killed,
        // and what it wrote is thrown away.
        let (other, other_held) = prepare(&plan, &store, &mut notes);
        assert_ne!(other[0].run, c.run);
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
        assert!(!has_entries(&c.upper()) && !has_entries(&other[0].upper()));
        // The slot is reused.
        let (again, again_held) = prepare(&plan, &store, &mut notes);
        assert_eq!(again[0].run, c.run);
        drop(again_held);
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
        let got = ready(
            &layer,
            &base.join("store"),
            &base.join("slot"),
            Some(u32::MAX - 7),
        );
        assert!(
            got.as_ref().is_err_and(|e| e.contains("not to you")),
            "{got:?}"
        );
        let _ = moat_linux::layers::remove_tree(&base);
    }
}
