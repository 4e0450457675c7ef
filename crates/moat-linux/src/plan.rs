//! The mount plan: an ordered list of operations the sandbox's first
//! process performs in its new mount namespace, built from the filesystem
//! view. Pure data, so the order can be unit-tested.
//!
//! The order matters and is:
//! 1. make every mount private (nothing propagates back to the host);
//! 2. clone, while the host's mounts are still writable, the trees that must
//!    stay writable (writable roots) and the device nodes;
//! 3. make every mount read-only, nosuid and nodev in one recursive call;
//! 4. mount the private areas (/tmp, /var/tmp, /run), so that writable roots
//!    living under them can be re-attached inside them;
//! 5. attach the writable roots;
//! 6. pin directories above protected paths, then bind protected paths
//!    read-only over themselves;
//! 7. mask denied paths and the host's sockets;
//! 8. build /dev, mount a fresh /proc, bring up loopback.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use moat_spec::{Fs, Kind};

use crate::sys::mount::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};

/// Device nodes the sandbox gets (bound from the host's /dev).
pub const DEV_NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// One step of the plan. Paths are C strings so the child can use them
/// without allocating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Make every mount private, recursively.
    MakePrivate,
    /// Put a detached clone of `source` in slot `slot`.
    Clone {
        slot: usize,
        source: Source,
        recursive: bool,
    },
    /// Put in slot `slot` a detached overlay of `upper` (with `work`) over
    /// `shared` over `lower`: a tool cache's layers, made while the host's
    /// mounts are still writable.
    Overlay {
        slot: usize,
        lower: CString,
        shared: CString,
        upper: CString,
        work: CString,
    },
    /// Read-only, nosuid, nodev on every mount.
    LockDown,
    /// Mount a tmpfs.
    Tmpfs {
        target: CString,
        options: CString,
        flags: libc::c_ulong,
    },
    /// Create a directory (inside a tmpfs the plan mounted).
    Mkdir {
        path: CString,
        mode: libc::mode_t,
    },
    /// Create an empty file as a mount point.
    Touch {
        path: CString,
    },
    Symlink {
        target: CString,
        link: CString,
    },
    /// Attach slot `slot` at `target`, setting `set` attributes on it
    /// and, with `idmap`, the run's id mapping (the person's files appear
    /// as the sandbox account's). The target is reached with no symlink on
    /// the way and, with `expect`, must be the directory checked before
    /// the run (else ESTALE).
    Attach {
        slot: usize,
        target: CString,
        set: u64,
        idmap: bool,
        expect: Option<FileId>,
    },
    /// Bind `path` over itself: read-only (protected) or not (pinned).
    BindSelf {
        path: CString,
        read_only: bool,
    },
    /// Prepare the empty, unreadable file that masks denied files, on a
    /// tmpfs attached at `under`, where a later mount covers it. Left
    /// detached, the tmpfs would be dissolved when its descriptor is closed,
    /// and every unmount waits for an expedited RCU grace period (60-160 µs
    /// on the machines in BENCHMARKS.md) in the middle of the start-up;
    /// attached, it goes with the namespace.
    EmptyFile {
        under: CString,
    },
    /// Bind the empty file over `target`. A `transient` target (a host
    /// socket, which its server may remove at any moment) that is gone by
    /// then, or lies below a directory the sandbox cannot search, has
    /// nothing left to hide and is skipped.
    MaskFile {
        target: CString,
        transient: bool,
    },
    /// Bind over `target` (the system's bundle of trusted authorities) a
    /// copy of it with `extra` appended, written to a tmpfs attached at
    /// `under`, where a later mount covers it (see [`Op::EmptyFile`]).
    TrustBundle {
        under: CString,
        target: CString,
        extra: Vec<u8>,
    },
    /// Mount an empty, unreadable, read-only tmpfs over `target`.
    MaskDir {
        target: CString,
    },
    Proc {
        target: CString,
    },
    Devpts {
        target: CString,
    },
    /// Change attributes of the single mount at `path`.
    SetAttr {
        path: CString,
        set: u64,
    },
    LoopbackUp,
}

/// What a clone is taken of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The tree at this path, resolved inside the sandbox; with `expect`,
    /// it must be the directory checked before the run (else ESTALE).
    Path {
        path: CString,
        expect: Option<FileId>,
    },
    /// A detached tree the parent cloned from a descriptor it checked
    /// (`ChildSpec::trees[index]`): the elevated tier's writable roots and
    /// home, never reached by name as root.
    Tree { index: usize, path: CString },
}

/// A directory's identity, as `fstat` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// A tool cache's layer as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanCache {
    /// Where tools see it.
    pub at: PathBuf,
    /// What the directory there was when it was opened before the run.
    pub id: Option<FileId>,
    pub layer: Layer,
}

/// Where a cache's overlay comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layer {
    /// Made inside the sandbox from these directories (the unelevated
    /// tier, in its user namespace).
    Paths {
        shared: PathBuf,
        upper: PathBuf,
        work: PathBuf,
    },
    /// Made by the launcher from checked descriptors
    /// (`ChildSpec::trees[index]`).
    Tree(usize),
}

/// A writable root (or the elevated tier's home) as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRoot {
    pub path: PathBuf,
    /// What the directory was when it was opened before the run.
    pub id: Option<FileId>,
    /// The parent's detached clone of it (`ChildSpec::trees`), if any.
    pub tree: Option<usize>,
}

impl PlanRoot {
    fn source(&self) -> Source {
        match self.tree {
            Some(index) => Source::Tree {
                index,
                path: c(&self.path),
            },
            None => Source::Path {
                path: c(&self.path),
                expect: self.id,
            },
        }
    }
}

impl Op {
    /// What the step does, for error messages.
    pub fn describe(&self) -> String {
        let s = |c: &CString| c.to_string_lossy().into_owned();
        match self {
            Op::MakePrivate => "make mounts private".into(),
            Op::Clone {
                source: Source::Path { path, .. },
                ..
            } => format!("clone the mount at {}", s(path)),
            Op::Clone {
                source: Source::Tree { path, .. },
                ..
            } => format!("take the checked clone of {}", s(path)),
            Op::Overlay { lower, .. } => format!("make the cache layer over {}", s(lower)),
            Op::LockDown => "make every mount read-only".into(),
            Op::Tmpfs { target, .. } => format!("mount a private tmpfs on {}", s(target)),
            Op::Mkdir { path, .. } => format!("create directory {}", s(path)),
            Op::Touch { path } => format!("create mount point {}", s(path)),
            Op::Symlink { link, .. } => format!("create symlink {}", s(link)),
            Op::Attach {
                target,
                idmap: true,
                ..
            } => format!(
                "attach {} idmapped (its filesystem must support idmapped mounts)",
                s(target)
            ),
            Op::Attach {
                target,
                expect: Some(_),
                ..
            } => format!(
                "attach {} (it must still be the directory checked before the run)",
                s(target)
            ),
            Op::Attach { target, .. } => format!("attach {}", s(target)),
            Op::BindSelf {
                path,
                read_only: true,
            } => format!("keep {} read-only", s(path)),
            Op::BindSelf { path, .. } => format!("pin {}", s(path)),
            Op::EmptyFile { .. } => "prepare the mask for denied files".into(),
            Op::TrustBundle { target, .. } => {
                format!("add moat's certificate authority to {}", s(target))
            }
            Op::MaskFile { target, .. } | Op::MaskDir { target } => format!("hide {}", s(target)),
            Op::Proc { target } => format!("mount proc on {}", s(target)),
            Op::Devpts { target } => format!("mount devpts on {}", s(target)),
            Op::SetAttr { path, .. } => format!("set attributes on {}", s(path)),
            Op::LoopbackUp => "bring up loopback".into(),
        }
    }
}

/// A rule Landlock can only get inside the sandbox, because the mount it
/// names is created there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InnerRule {
    pub path: CString,
    pub access: InnerAccess,
}

/// The kind of access an inner rule grants (turned into bits by the
/// Landlock module, which knows the ABI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InnerAccess {
    /// Everything (private temporary directories).
    All,
    /// Read, write and ioctl on device files.
    Devices,
    /// Read only.
    Read,
}

/// Host facts the plan depends on, passed in so tests can vary them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanInput {
    /// The writable roots, opened before the run.
    pub roots: Vec<PlanRoot>,
    /// The workspace when it is not writable, opened before the run: it
    /// stays visible (read-only) even under a private area.
    pub read_only_workspace: Option<PlanRoot>,
    /// Tool caches' layers.
    pub caches: Vec<PlanCache>,
    /// Whether the run gets its own network namespace.
    pub own_network: bool,
    /// Host directories that exist and are not symlinks.
    pub var_tmp: bool,
    pub var_run_is_dir: bool,
    pub run: bool,
    /// `$XDG_RUNTIME_DIR`, if set and an existing directory.
    pub runtime_dir: Option<PathBuf>,
    /// A file under /run that must stay visible (the target of
    /// /etc/resolv.conf when the network is on).
    pub keep_under_run: Vec<PathBuf>,
    /// Host device nodes that exist.
    pub dev_nodes: Vec<&'static str>,
    /// Paths of listening sockets of the host.
    pub host_sockets: Vec<PathBuf>,
    /// The system's bundle of trusted authorities, and the authority (PEM)
    /// the command trusts besides them.
    pub trust_bundle: Option<(PathBuf, Vec<u8>)>,
    /// The elevated tier: writable roots are attached idmapped, and this
    /// home (the person's, owned by them) is attached idmapped and
    /// read-only, so the sandbox account can read it whatever its mode.
    pub idmap: Option<IdmapInput>,
}

/// What the elevated tier maps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdmapInput {
    pub home: Option<PlanRoot>,
}

/// The plan and what Landlock needs from inside.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountPlan {
    pub ops: Vec<Op>,
    pub slots: usize,
    pub inner_rules: Vec<InnerRule>,
}

fn c(path: &Path) -> CString {
    // Paths from the OS never hold NUL bytes; one that did would be dropped
    // to an empty string, which every mount call refuses.
    CString::new(path.as_os_str().as_bytes()).unwrap_or_default()
}

fn cs(text: &str) -> CString {
    CString::new(text).unwrap_or_default()
}

/// Private areas replaced by a fresh tmpfs, in mount order.
fn private_areas(input: &PlanInput) -> Vec<(&'static str, &'static str, bool)> {
    // (path, options, read-only once populated)
    let mut areas = vec![("/tmp", "mode=1777", false)];
    if input.var_tmp {
        areas.push(("/var/tmp", "mode=1777", false));
    }
    if input.run {
        areas.push(("/run", "mode=755", true));
    }
    if input.var_run_is_dir {
        areas.push(("/var/run", "mode=755", true));
    }
    areas
}

struct Builder {
    plan: MountPlan,
}

impl Builder {
    fn op(&mut self, op: Op) {
        self.plan.ops.push(op);
    }

    fn slot(&mut self) -> usize {
        self.plan.slots += 1;
        self.plan.slots - 1
    }

    /// Creates the directories from `area` down to `path` inside a tmpfs
    /// the plan mounted at `area`.
    fn mkdirs(&mut self, area: &Path, path: &Path) {
        let mut dirs: Vec<&Path> = path
            .ancestors()
            .take_while(|a| *a != area && a.starts_with(area))
            .collect();
        dirs.reverse();
        for d in dirs {
            self.op(Op::Mkdir {
                path: c(d),
                mode: 0o755,
            });
        }
    }
}

/// Builds the plan for `fs`.
pub fn build(fs: &Fs, input: &PlanInput) -> MountPlan {
    // The spec's lists; what is opened of it comes with `input`.
    let mut b = Builder {
        plan: MountPlan::default(),
    };
    b.op(Op::MakePrivate);
    let areas = private_areas(input);
    let under_area = |p: &Path| {
        areas
            .iter()
            .map(|(a, _, _)| Path::new(a))
            .find(|a| p.starts_with(a))
            .map(Path::to_path_buf)
    };

    // 2. Clones taken while everything is still as on the host. The
    // person's home comes first, so the roots inside it are attached on
    // top of it.
    let mut roots = Vec::new();
    let idmap = input.idmap.is_some();
    let writable = |p: &Path| input.roots.iter().any(|r| p.starts_with(&r.path));
    if let Some(home) = input.idmap.as_ref().and_then(|i| i.home.as_ref()) {
        if !writable(&home.path) && home.path.as_path() != Path::new("/") {
            let slot = b.slot();
            b.op(Op::Clone {
                slot,
                source: home.source(),
                recursive: true,
            });
            roots.push((slot, home.path.clone(), MOUNT_ATTR_RDONLY, home.id));
        }
    }
    for r in &input.roots {
        let slot = b.slot();
        b.op(Op::Clone {
            slot,
            source: r.source(),
            recursive: true,
        });
        roots.push((slot, r.path.clone(), 0u64, r.id));
    }
    // A read-only workspace under a private area must stay visible.
    if let Some(ws) = &input.read_only_workspace {
        if !writable(&ws.path) && under_area(&ws.path).is_some() {
            let slot = b.slot();
            b.op(Op::Clone {
                slot,
                source: ws.source(),
                recursive: true,
            });
            roots.push((slot, ws.path.clone(), MOUNT_ATTR_RDONLY, ws.id));
        }
    }
    let by_path = |path: CString| Source::Path { path, expect: None };
    let mut kept = Vec::new();
    for k in &input.keep_under_run {
        let slot = b.slot();
        b.op(Op::Clone {
            slot,
            source: by_path(c(k)),
            recursive: false,
        });
        kept.push((slot, k.clone()));
    }
    let mut nodes = Vec::new();
    for n in &input.dev_nodes {
        let slot = b.slot();
        b.op(Op::Clone {
            slot,
            source: by_path(cs(&format!("/dev/{}", n))),
            recursive: false,
        });
        nodes.push((slot, *n));
    }

    // Cache layers: an overlay needs its upper directory writable when it
    // is made. One under a private area is hidden by it, so gets none.
    let mut layers = Vec::new();
    for cache in input.caches.iter().filter(|c| under_area(&c.at).is_none()) {
        let slot = b.slot();
        match &cache.layer {
            Layer::Paths {
                shared,
                upper,
                work,
            } => b.op(Op::Overlay {
                slot,
                lower: c(&cache.at),
                shared: c(shared),
                upper: c(upper),
                work: c(work),
            }),
            Layer::Tree(index) => b.op(Op::Clone {
                slot,
                source: Source::Tree {
                    index: *index,
                    path: c(&cache.at),
                },
                recursive: false,
            }),
        }
        layers.push((slot, cache));
    }

    // 3.
    b.op(Op::LockDown);

    // 4. Private areas; a writable root that is one of them (or holds one)
    // replaces it instead.
    let mut mounted_areas = Vec::new();
    let mut populated = Vec::new();
    for (area, options, read_only) in &areas {
        let area_path = Path::new(area);
        if writable(area_path) {
            continue;
        }
        // A read-only area nothing is attached under is mounted read-only
        // at once.
        let fills = roots.iter().any(|(_, p, _, _)| p.starts_with(area_path))
            || kept.iter().any(|(_, p)| p.starts_with(area_path));
        let mut flags = (libc::MS_NOSUID | libc::MS_NODEV) as libc::c_ulong;
        if *read_only && !fills {
            flags |= libc::MS_RDONLY as libc::c_ulong;
        } else if *read_only {
            populated.push(area_path.to_path_buf());
        }
        b.op(Op::Tmpfs {
            target: cs(area),
            options: cs(options),
            flags,
        });
        mounted_areas.push(area_path.to_path_buf());
        let access = if *area == "/run" || *area == "/var/run" {
            InnerAccess::Read
        } else {
            InnerAccess::All
        };
        b.plan.inner_rules.push(InnerRule {
            path: cs(area),
            access,
        });
    }

    // 5. Writable roots (and the read-only workspace), re-created inside a
    // private area when they live under one.
    for (slot, path, extra, id) in &roots {
        // Re-created inside a fresh tmpfs, the target is a new directory,
        // not the checked one.
        let expect = match mounted_areas.iter().find(|a| path.starts_with(a)) {
            Some(area) => {
                let area = area.clone();
                b.mkdirs(&area, path);
                None
            }
            None => *id,
        };
        b.op(Op::Attach {
            slot: *slot,
            target: c(path),
            set: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | extra,
            idmap,
            expect,
        });
    }
    for (slot, path) in &kept {
        if let (Some(area), Some(parent)) = (
            mounted_areas.iter().find(|a| path.starts_with(a)).cloned(),
            path.parent(),
        ) {
            b.mkdirs(&area, parent);
            b.op(Op::Touch { path: c(path) });
            b.op(Op::Attach {
                slot: *slot,
                target: c(path),
                set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                idmap: false,
                expect: None,
            });
        }
    }
    for area in &populated {
        b.op(Op::SetAttr {
            path: c(area),
            set: MOUNT_ATTR_RDONLY,
        });
    }
    // Cache layers, over the home (and the roots) they lie in.
    for (slot, cache) in &layers {
        b.op(Op::Attach {
            slot: *slot,
            target: c(&cache.at),
            set: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            idmap: false,
            expect: cache.id,
        });
        b.plan.inner_rules.push(InnerRule {
            path: c(&cache.at),
            access: InnerAccess::All,
        });
    }

    // 6. Pins before the protected paths below them.
    for pin in &fs.pins {
        b.op(Op::BindSelf {
            path: c(pin),
            read_only: false,
        });
    }
    for p in &fs.protected {
        b.op(Op::BindSelf {
            path: c(&p.path),
            read_only: true,
        });
    }

    // 7. Masks. What lies under a private area is hidden already.
    let hidden = |p: &Path| mounted_areas.iter().any(|a| p.starts_with(a));
    let mut file_masks = Vec::new();
    let mut dir_masks = Vec::new();
    for d in &fs.denied {
        if hidden(&d.path) {
            continue;
        }
        match d.kind {
            Kind::Dir => dir_masks.push(d.path.clone()),
            _ => file_masks.push((d.path.clone(), false)),
        }
    }
    if let Some(rt) = &input.runtime_dir {
        if !hidden(rt) && !writable(rt) {
            dir_masks.push(rt.clone());
        }
    }
    for s in &input.host_sockets {
        let already = hidden(s) || fs.denied.iter().any(|d| s.starts_with(&d.path));
        if !already {
            file_masks.push((s.clone(), true));
        }
    }
    for d in dir_masks {
        b.op(Op::MaskDir { target: c(&d) });
    }
    if !file_masks.is_empty() {
        // /dev is covered by its own tmpfs in step 8.
        b.op(Op::EmptyFile { under: cs("/dev") });
        for (f, transient) in file_masks {
            b.op(Op::MaskFile {
                target: c(&f),
                transient,
            });
        }
    }

    if let Some((target, extra)) = &input.trust_bundle {
        // Like the mask, on a tmpfs /dev's own covers in step 8.
        b.op(Op::TrustBundle {
            under: cs("/dev"),
            target: c(target),
            extra: extra.clone(),
        });
    }

    // 8. /dev, /proc, loopback.
    b.op(Op::Tmpfs {
        target: cs("/dev"),
        options: cs("mode=755"),
        flags: (libc::MS_NOSUID | libc::MS_NOEXEC) as libc::c_ulong,
    });
    for (slot, name) in &nodes {
        let path = cs(&format!("/dev/{}", name));
        b.op(Op::Touch { path: path.clone() });
        // The host's /dev mount flags are kept: these are device nodes, and
        // nosuid/noexec mean nothing for them.
        b.op(Op::Attach {
            slot: *slot,
            target: path,
            set: 0,
            idmap: false,
            expect: None,
        });
    }
    b.op(Op::Mkdir {
        path: cs("/dev/pts"),
        mode: 0o755,
    });
    b.op(Op::Devpts {
        target: cs("/dev/pts"),
    });
    b.op(Op::Symlink {
        target: cs("pts/ptmx"),
        link: cs("/dev/ptmx"),
    });
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        b.op(Op::Symlink {
            target: cs(target),
            link: cs(link),
        });
    }
    b.op(Op::Mkdir {
        path: cs("/dev/shm"),
        mode: 0o755,
    });
    b.op(Op::Tmpfs {
        target: cs("/dev/shm"),
        options: cs("mode=1777"),
        flags: (libc::MS_NOSUID | libc::MS_NODEV) as libc::c_ulong,
    });
    b.op(Op::SetAttr {
        path: cs("/dev"),
        set: MOUNT_ATTR_RDONLY,
    });
    b.plan.inner_rules.push(InnerRule {
        path: cs("/dev"),
        access: InnerAccess::Devices,
    });
    b.plan.inner_rules.push(InnerRule {
        path: cs("/dev/shm"),
        access: InnerAccess::All,
    });
    b.op(Op::Proc {
        target: cs("/proc"),
    });
    b.plan.inner_rules.push(InnerRule {
        path: cs("/proc"),
        access: InnerAccess::Read,
    });
    if input.own_network {
        b.op(Op::LoopbackUp);
    }
    b.plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use moat_spec::Entry;

    fn names(plan: &MountPlan) -> Vec<String> {
        plan.ops.iter().map(Op::describe).collect()
    }

    fn position(plan: &MountPlan, text: &str) -> usize {
        names(plan)
            .iter()
            .position(|n| n == text)
            .unwrap_or(usize::MAX)
    }

    fn view() -> Fs {
        Fs {
            workspace: PathBuf::from("/tmp/ws"),
            writable: vec![PathBuf::from("/tmp/ws")],
            protected: vec![Entry {
                path: PathBuf::from("/tmp/ws/.git/hooks"),
                kind: Kind::Dir,
            }],
            pins: vec![PathBuf::from("/tmp/ws/.git")],
            denied: vec![
                Entry {
                    path: PathBuf::from("/home/u/.ssh"),
                    kind: Kind::Dir,
                },
                Entry {
                    path: PathBuf::from("/home/u/.netrc"),
                    kind: Kind::File,
                },
            ],
            ..Fs::default()
        }
    }

    const WS: FileId = FileId { dev: 1, ino: 2 };

    fn root(path: &str, tree: Option<usize>) -> PlanRoot {
        PlanRoot {
            path: PathBuf::from(path),
            id: Some(WS),
            tree,
        }
    }

    fn input() -> PlanInput {
        PlanInput {
            roots: vec![root("/tmp/ws", None)],
            own_network: true,
            run: true,
            dev_nodes: vec!["null", "tty"],
            host_sockets: vec![
                PathBuf::from("/var/lib/x.sock"),
                PathBuf::from("/run/dbus/socket"),
                PathBuf::from("/home/u/.ssh/agent"),
            ],
            ..PlanInput::default()
        }
    }

    #[test]
    fn host_sockets_are_masked_as_transient_and_denied_files_are_not() {
        let plan = build(&view(), &input());
        let masks: Vec<(String, bool)> = plan
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::MaskFile { target, transient } => {
                    Some((target.to_string_lossy().into_owned(), *transient))
                }
                _ => None,
            })
            .collect();
        assert!(
            masks.contains(&("/home/u/.netrc".into(), false)),
            "{masks:?}"
        );
        assert!(
            masks.contains(&("/var/lib/x.sock".into(), true)),
            "{masks:?}"
        );
    }

    #[test]
    fn the_mask_source_is_covered_by_a_later_mount() {
        let plan = build(&view(), &input());
        let source = plan
            .ops
            .iter()
            .position(|op| matches!(op, Op::EmptyFile { under } if under.as_bytes() == b"/dev"));
        let cover = plan
            .ops
            .iter()
            .rposition(|op| matches!(op, Op::Tmpfs { target, .. } if target.as_bytes() == b"/dev"));
        assert!(
            matches!((source, cover), (Some(s), Some(c)) if s < c),
            "{source:?} {cover:?}"
        );
    }

    #[test]
    fn order_of_operations() {
        let plan = build(&view(), &input());
        let clone_ws = position(&plan, "clone the mount at /tmp/ws");
        let lock = position(&plan, "make every mount read-only");
        let tmp = position(&plan, "mount a private tmpfs on /tmp");
        let attach = position(&plan, "attach /tmp/ws");
        let pin = position(&plan, "pin /tmp/ws/.git");
        let hooks = position(&plan, "keep /tmp/ws/.git/hooks read-only");
        assert_eq!(position(&plan, "make mounts private"), 0);
        assert!(clone_ws < lock, "roots are cloned while still writable");
        assert!(position(&plan, "clone the mount at /dev/null") < lock);
        assert!(
            lock < tmp && tmp < attach,
            "roots under /tmp re-attached inside it"
        );
        assert!(position(&plan, "create directory /tmp/ws") < attach);
        assert!(attach < pin && pin < hooks, "pins before what they protect");
        assert!(position(&plan, "hide /home/u/.ssh") > hooks);
        assert!(
            position(&plan, "hide /home/u/.netrc")
                > position(&plan, "prepare the mask for denied files")
        );
        assert!(position(&plan, "bring up loopback") < usize::MAX);
    }

    #[test]
    fn host_sockets_masked_unless_already_hidden() {
        let plan = build(&view(), &input());
        let n = names(&plan);
        assert!(n.contains(&"hide /var/lib/x.sock".to_string()));
        assert!(!n.contains(&"hide /run/dbus/socket".to_string()));
        assert!(!n.contains(&"hide /home/u/.ssh/agent".to_string()));
    }

    #[test]
    fn no_loopback_without_own_network_and_read_only_run() {
        let mut i = input();
        i.own_network = false;
        let plan = build(&view(), &i);
        assert_eq!(position(&plan, "bring up loopback"), usize::MAX);
        // Nothing under /run: mounted read-only at once.
        assert_eq!(position(&plan, "set attributes on /run"), usize::MAX);
        // A file kept under /run: populated, then made read-only.
        i.keep_under_run = vec![PathBuf::from("/run/resolvconf/resolv.conf")];
        let plan = build(&view(), &i);
        assert!(
            position(&plan, "set attributes on /run")
                > position(&plan, "attach /run/resolvconf/resolv.conf")
        );
    }

    #[test]
    fn writable_tmp_replaces_the_private_one() {
        let mut i = input();
        i.roots[0].path = PathBuf::from("/tmp");
        let plan = build(&view(), &i);
        assert_eq!(position(&plan, "mount a private tmpfs on /tmp"), usize::MAX);
    }

    #[test]
    fn read_only_workspace_under_tmp_stays_visible() {
        let mut v = view();
        v.writable.clear();
        let mut i = input();
        i.read_only_workspace = i.roots.pop();
        let plan = build(&v, &i);
        let attach = plan.ops.iter().find_map(|op| match op {
            Op::Attach { target, set, .. } if target.as_bytes() == b"/tmp/ws" => Some(*set),
            _ => None,
        });
        assert_eq!(
            attach.map(|s| s & MOUNT_ATTR_RDONLY),
            Some(MOUNT_ATTR_RDONLY)
        );
    }

    /// The elevated tier: the checked clones are taken, never a name; a
    /// root attached where it was checked must still be that directory,
    /// one re-created in a private area cannot be.
    #[test]
    fn checked_roots_come_from_their_descriptors() {
        let mut i = input();
        i.roots = vec![root("/tmp/ws", Some(0)), root("/home/u/prj", Some(1))];
        i.idmap = Some(IdmapInput {
            home: Some(root("/home/u", Some(2))),
        });
        let plan = build(&view(), &i);
        let sources: Vec<&Source> = plan
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::Clone { source, .. } => Some(source),
                _ => None,
            })
            .collect();
        let trees: Vec<usize> = sources
            .iter()
            .filter_map(|s| match s {
                Source::Tree { index, .. } => Some(*index),
                Source::Path { .. } => None,
            })
            .collect();
        assert_eq!(trees, [2, 0, 1], "home first, then the roots");
        assert!(
            !sources.iter().any(|s| matches!(s, Source::Path { path, .. }
            if path.as_bytes().starts_with(b"/home") || path.as_bytes() == b"/tmp/ws"))
        );
        let expect = |target: &[u8]| {
            plan.ops.iter().find_map(|op| match op {
                Op::Attach {
                    target: t,
                    expect,
                    idmap,
                    ..
                } if t.as_bytes() == target => Some((*expect, *idmap)),
                _ => None,
            })
        };
        assert_eq!(expect(b"/home/u/prj"), Some((Some(WS), true)));
        assert_eq!(expect(b"/home/u"), Some((Some(WS), true)));
        assert_eq!(
            expect(b"/tmp/ws"),
            Some((None, true)),
            "made anew under /tmp"
        );
        assert_eq!(expect(b"/dev/null"), Some((None, false)));
    }

    /// The unelevated tier: roots are cloned by name inside the sandbox,
    /// and the clone must be the directory moat opened.
    #[test]
    fn unchecked_roots_are_cloned_by_name_and_compared() {
        let mut i = input();
        i.roots = vec![root("/home/u/prj", None)];
        let plan = build(&view(), &i);
        assert!(plan.ops.iter().any(|op| matches!(op,
            Op::Clone { source: Source::Path { path, expect: Some(WS) }, .. }
                if path.as_bytes() == b"/home/u/prj")));
    }

    /// Cache layers are made before the lock-down (their upper directory
    /// must still be writable), attached after the home and the roots,
    /// and made writable to Landlock from inside.
    #[test]
    fn cache_layers_are_made_early_and_attached_late() {
        let mut i = input();
        i.caches = vec![
            PlanCache {
                at: PathBuf::from("/home/u/.cargo"),
                id: Some(WS),
                layer: Layer::Paths {
                    shared: PathBuf::from("/home/u/.local/state/moat/caches/cargo/shared"),
                    upper: PathBuf::from("/home/u/.local/state/moat/caches/cargo/runs/1/upper"),
                    work: PathBuf::from("/home/u/.local/state/moat/caches/cargo/runs/1/work"),
                },
            },
            PlanCache {
                at: PathBuf::from("/tmp/x/.cache"),
                id: None,
                layer: Layer::Tree(0),
            },
        ];
        let plan = build(&view(), &i);
        let made = position(&plan, "make the cache layer over /home/u/.cargo");
        let lock = position(&plan, "make every mount read-only");
        let attached = position(
            &plan,
            "attach /home/u/.cargo (it must still be the directory checked before the run)",
        );
        assert!(made < lock && lock < attached, "{:?}", names(&plan));
        assert!(attached < position(&plan, "hide /home/u/.ssh"));
        assert!(
            !names(&plan).iter().any(|n| n.contains("/tmp/x/.cache")),
            "a cache under a private area gets no layer"
        );
        assert!(plan
            .inner_rules
            .iter()
            .any(|r| r.path.as_bytes() == b"/home/u/.cargo" && r.access == InnerAccess::All));
    }
}
