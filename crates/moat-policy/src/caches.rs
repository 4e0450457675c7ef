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

/// How a tool is pointed at a directory of moat's own instead of its cache
/// under the home directory, through its environment: the fallback where
/// no layer can be laid over the cache (the landlock-only mode has no
/// mounts). The tool then starts from an empty cache, kept for later
/// sandboxed runs; the person's own stays read-only and unused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redirect {
    /// Variables set to the directory, or to a path under it (`""`: the
    /// directory itself).
    pub vars: &'static [(&'static str, &'static str)],
    /// A Java system property, added to the options variable the person's
    /// environment may already hold: (variable, property, path under the
    /// directory).
    pub property: Option<(&'static str, &'static str, &'static str)>,
    /// The person's own configuration in the usual cache directory, which
    /// the tool looks for beside its cache: linked into the directory.
    pub links: &'static [&'static str],
}

/// The redirect of the layer `name` (one of [`TOOL_CACHES`]).
pub fn redirect(name: &str) -> Redirect {
    let vars: &'static [(&'static str, &'static str)] = match name {
        "cargo" => &[("CARGO_HOME", "")],
        "npm" => &[("npm_config_cache", "")],
        // Yarn 2 and later: the global folder holds its shared cache.
        "yarn" => &[("YARN_GLOBAL_FOLDER", "")],
        "pnpm" => &[("npm_config_store_dir", "store")],
        // GOPATH holds the module cache (pkg/mod) and `go install`'s bin.
        "go" => &[("GOPATH", "")],
        "gradle" => &[("GRADLE_USER_HOME", "")],
        "ccache" => &[("CCACHE_DIR", "")],
        // pip, uv, Go's build cache, yarn 1 and every tool that follows
        // XDG.
        "cache" => &[("XDG_CACHE_HOME", "")],
        _ => &[],
    };
    Redirect {
        vars,
        property: (name == "maven").then_some(("MAVEN_OPTS", "maven.repo.local", "repository")),
        links: match name {
            "cargo" => &["config.toml", "config"],
            "gradle" => &["gradle.properties", "init.d", "init.gradle"],
            _ => &[],
        },
    }
}

/// The variables that point the tool of layer `name` at `dir`, given the
/// person's environment `host` (for the options variable a property is
/// added to).
pub fn redirect_env(
    name: &str,
    dir: &Path,
    host: &[(std::ffi::OsString, std::ffi::OsString)],
) -> Vec<(&'static str, std::ffi::OsString)> {
    let r = redirect(name);
    let mut out: Vec<(&'static str, std::ffi::OsString)> = r
        .vars
        .iter()
        .map(|(var, sub)| {
            let path = if sub.is_empty() {
                dir.to_path_buf()
            } else {
                dir.join(sub)
            };
            (*var, path.into_os_string())
        })
        .collect();
    if let Some((var, property, sub)) = r.property {
        let mut value = host
            .iter()
            .find(|(n, _)| n == var)
            .map(|(_, v)| {
                let mut v = v.clone();
                v.push(" ");
                v
            })
            .unwrap_or_default();
        value.push(format!("-D{property}="));
        value.push(dir.join(sub));
        out.push((var, value));
    }
    out
}

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
    fn every_cache_has_a_redirect() {
        for (_, name, _) in TOOL_CACHES {
            let r = redirect(name);
            assert!(
                !r.vars.is_empty() || r.property.is_some(),
                "{name} has no way to point its tool elsewhere"
            );
        }
        let dir = Path::new("/s/direct/go");
        assert_eq!(
            redirect_env("go", dir, &[]),
            vec![("GOPATH", OsString::from("/s/direct/go"))]
        );
        assert_eq!(
            redirect_env("pnpm", Path::new("/s/p"), &[]),
            vec![("npm_config_store_dir", OsString::from("/s/p/store"))]
        );
        let host = vec![(OsString::from("MAVEN_OPTS"), OsString::from("-Xmx1g"))];
        assert_eq!(
            redirect_env("maven", Path::new("/s/m"), &host),
            vec![(
                "MAVEN_OPTS",
                OsString::from("-Xmx1g -Dmaven.repo.local=/s/m/repository")
            )]
        );
        assert_eq!(
            redirect_env("maven", Path::new("/s/m"), &[]),
            vec![(
                "MAVEN_OPTS",
                OsString::from("-Dmaven.repo.local=/s/m/repository")
            )]
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
