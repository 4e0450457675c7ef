//! Tool caches under the home directory: where package managers keep what
//! they download, their locks and their logs.
//!
//! A sandboxed command must be able to write them, or installing a
//! dependency fails; it must never write the person's own, or the next
//! unsandboxed build runs what it left there (an extracted crate's source
//! under `~/.cargo/registry/src` is compiled as it is found). So each cache
//! that exists is shown inside the sandbox as a layer of moat's own over
//! the person's cache: the person's files read-only beneath, what the
//! sandbox writes kept in moat's store, seen only by later sandboxed runs.
//! This module decides which caches get a layer; the backend makes them.

use std::path::{Path, PathBuf};

use crate::host::{EntryKind, HostFs};
use crate::resolve::Policy;
use crate::types::Preset;
use crate::view::FsView;

/// The caches that get a layer: the path under the home directory, the
/// layer's name (its directory in moat's store), and the program whose
/// cache it is (a missing cache is made for a program that is installed;
/// `""`: always).
pub const TOOL_CACHES: &[(&str, &str, &str)] = &[
    // cargo: the registry and git checkouts, and the package-cache lock
    // and the index of installed programs beside them.
    (".cargo", "cargo", "cargo"),
    (".npm", "npm", "npm"),
    (".yarn", "yarn", "yarn"),
    (".local/share/pnpm", "pnpm", "pnpm"),
    // Go's module cache, under GOPATH.
    ("go", "go", "go"),
    (".m2", "maven", "mvn"),
    (".gradle", "gradle", "gradle"),
    (".ccache", "ccache", "ccache"),
    // pip, uv, Go's build cache, yarn 1, ccache, and the XDG cache of
    // every other tool.
    (".cache", "cache", ""),
];

/// One cache that gets a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheLayer {
    /// The layer's name in moat's store.
    pub name: &'static str,
    /// Where tools look for it.
    pub at: PathBuf,
    /// Whether the person has no such directory yet (the backend makes an
    /// empty one to lay the layer over).
    pub missing: bool,
}

/// The layers of a run, and what the person should know about the
/// caches that get none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CachePlan {
    pub layers: Vec<CacheLayer>,
    pub notes: Vec<String>,
}

fn within(path: &Path, root: &Path) -> bool {
    path.starts_with(root)
}

/// The cache layers for `policy` and its `view`. `installed` says whether a
/// program is on the person's PATH.
pub fn plan(
    policy: &Policy,
    view: &FsView,
    fs: &dyn HostFs,
    installed: &dyn Fn(&str) -> bool,
) -> CachePlan {
    let mut out = CachePlan::default();
    if policy.preset.value != Preset::WorkspaceWrite {
        return out;
    }
    let home = fs
        .canonicalize(&policy.home)
        .unwrap_or_else(|_| policy.home.clone());
    for (rel, name, program) in TOOL_CACHES {
        let at = home.join(rel);
        let shown = format!("~/{rel}");
        if view.denied.iter().any(|d| within(&at, &d.path)) {
            continue;
        }
        if view.writable.iter().any(|w| within(&at, &w.path)) {
            continue;
        }
        if let Some(w) = view.writable.iter().find(|w| within(&w.path, &at)) {
            out.notes.push(format!(
                "{shown} gets no cache layer: it holds the writable root {}",
                w.path.display()
            ));
            continue;
        }
        let missing = match fs.kind(&at) {
            Some(EntryKind::Dir) => false,
            Some(EntryKind::Symlink) => {
                out.notes.push(format!(
                    "{shown} is a symlink, so it gets no cache layer and stays read-only"
                ));
                continue;
            }
            Some(_) => {
                out.notes.push(format!(
                    "{shown} is not a directory, so it gets no cache layer"
                ));
                continue;
            }
            None if program.is_empty() || installed(program) => true,
            None => continue,
        };
        out.layers.push(CacheLayer { name, at, missing });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostFacts;
    use crate::resolve::Settings;
    use crate::types::{Source, Sourced};
    use crate::view::{Denied, Writable};
    use std::collections::BTreeMap;
    use std::ffi::OsString;

    struct Fake(BTreeMap<PathBuf, EntryKind>);

    impl HostFs for Fake {
        fn kind(&self, path: &Path) -> Option<EntryKind> {
            self.0.get(path).copied()
        }
        fn canonicalize(&self, path: &Path) -> std::io::Result<PathBuf> {
            Ok(path.to_path_buf())
        }
        fn read_dir(&self, _: &Path) -> std::io::Result<Vec<(OsString, EntryKind)>> {
            Ok(Vec::new())
        }
        fn read_small(&self, _: &Path, _: usize) -> std::io::Result<String> {
            Ok(String::new())
        }
    }

    fn policy(preset: Preset) -> Policy {
        let facts = HostFacts {
            home: PathBuf::from("/home/u"),
            cwd: PathBuf::from("/home/u/prj"),
            env: Vec::new(),
        };
        let mut p = Settings::new()
            .resolve(
                &facts,
                Sourced::new(PathBuf::from("/home/u/prj"), Source::Api),
            )
            .unwrap_or_else(|_| unreachable_policy());
        p.preset = Sourced::new(preset, Source::Api);
        p
    }

    #[allow(clippy::panic)]
    fn unreachable_policy() -> Policy {
        panic!("the default settings resolve")
    }

    fn fs(entries: &[(&str, EntryKind)]) -> Fake {
        Fake(
            entries
                .iter()
                .map(|(p, k)| (PathBuf::from(p), *k))
                .collect(),
        )
    }

    fn view(writable: &[&str], denied: &[&str]) -> FsView {
        FsView {
            writable: writable
                .iter()
                .map(|p| Writable {
                    path: PathBuf::from(p),
                    source: Source::Default,
                })
                .collect(),
            denied: denied
                .iter()
                .map(|p| Denied {
                    path: PathBuf::from(p),
                    kind: EntryKind::Dir,
                    source: Source::Default,
                })
                .collect(),
            ..FsView::default()
        }
    }

    fn names(plan: &CachePlan) -> Vec<(&'static str, bool)> {
        plan.layers.iter().map(|l| (l.name, l.missing)).collect()
    }

    #[test]
    fn existing_caches_and_those_of_installed_tools_get_layers() {
        let host = fs(&[
            ("/home/u/.cargo", EntryKind::Dir),
            ("/home/u/.npm", EntryKind::Dir),
            ("/home/u/.m2", EntryKind::Symlink),
        ]);
        let installed = |p: &str| p == "go";
        let plan = plan(
            &policy(Preset::WorkspaceWrite),
            &view(&["/home/u/prj"], &[]),
            &host,
            &installed,
        );
        assert_eq!(
            names(&plan),
            [
                ("cargo", false),
                ("npm", false),
                ("go", true),
                ("cache", true)
            ]
        );
        assert!(
            plan.notes.iter().any(|n| n.contains("~/.m2 is a symlink")),
            "{:?}",
            plan.notes
        );
    }

    #[test]
    fn writable_denied_and_read_only_runs_get_none() {
        let host = fs(&[
            ("/home/u/.cargo", EntryKind::Dir),
            ("/home/u/.cache", EntryKind::Dir),
            ("/home/u/.npm", EntryKind::Dir),
        ]);
        let none = |_: &str| false;
        let p = plan(
            &policy(Preset::WorkspaceWrite),
            &view(&["/home/u/.cargo", "/home/u/.cache/prj"], &["/home/u/.npm"]),
            &host,
            &none,
        );
        assert!(p.layers.is_empty(), "{:?}", p.layers);
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("holds the writable root")),
            "{:?}",
            p.notes
        );
        let p = plan(&policy(Preset::ReadOnly), &view(&[], &[]), &host, &none);
        assert!(p.layers.is_empty());
    }
}
