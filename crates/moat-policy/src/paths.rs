//! Lexical path handling: no filesystem access here.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Why a path given in a flag or config file was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// Relative where only absolute (or `~/`) paths make sense.
    Relative(PathBuf),
    /// Empty string.
    Empty,
    /// `~user/...`: only the person's own home can be named this way.
    OtherUsersHome(PathBuf),
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::Relative(p) => write!(
                f,
                "`{}` is relative; use an absolute path or one starting with `~/`",
                p.display()
            ),
            PathError::Empty => f.write_str("empty path"),
            PathError::OtherUsersHome(p) => write!(
                f,
                "`{}` names another user's home; only `~/` is understood",
                p.display()
            ),
        }
    }
}

impl std::error::Error for PathError {}

/// Removes `.` components and folds `..` lexically. `path` should be
/// absolute; a `..` at the root stays at the root.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for comp in path.components() {
        match comp {
            Component::CurDir => {}
            Component::ParentDir => {
                if out.parent().is_some() {
                    out.pop();
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// Turns a path from a flag or config file into an absolute, normalized one.
///
/// `~` and `~/x` name the home directory. A relative path is resolved against
/// `base` when one is given (flags: the current directory; workspace config:
/// the workspace) and is an error otherwise (the person's config file).
pub fn absolutize(raw: &Path, home: &Path, base: Option<&Path>) -> Result<PathBuf, PathError> {
    let text = raw.to_string_lossy();
    if text.is_empty() {
        return Err(PathError::Empty);
    }
    if text == "~" {
        return Ok(normalize(home));
    }
    if let Some(rest) = text.strip_prefix("~/") {
        return Ok(normalize(&home.join(rest)));
    }
    if text.starts_with('~') {
        return Err(PathError::OtherUsersHome(raw.to_path_buf()));
    }
    if raw.is_absolute() {
        return Ok(normalize(raw));
    }
    match base {
        Some(base) => Ok(normalize(&base.join(raw))),
        None => Err(PathError::Relative(raw.to_path_buf())),
    }
}

/// True if `path` is `root` or below it (lexically).
pub fn is_within(path: &Path, root: &Path) -> bool {
    path.starts_with(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_folds_dots() {
        let cases = [
            ("/a/./b/../c", "/a/c"),
            ("/../x", "/x"),
            ("/a/b/..", "/a"),
            ("/", "/"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(Path::new(input)), PathBuf::from(want), "{input}");
        }
    }

    #[test]
    fn absolutize_cases() {
        let home = Path::new("/home/u");
        let base = Path::new("/ws");
        let ok = [
            ("~", None, "/home/u"),
            ("~/.ssh", None, "/home/u/.ssh"),
            ("/etc/../tmp", None, "/tmp"),
            ("build", Some(base), "/ws/build"),
            ("../other", Some(base), "/other"),
        ];
        for (raw, base, want) in ok {
            assert_eq!(
                absolutize(Path::new(raw), home, base),
                Ok(PathBuf::from(want)),
                "{raw}"
            );
        }
        assert_eq!(
            absolutize(Path::new("rel"), home, None),
            Err(PathError::Relative(PathBuf::from("rel")))
        );
        assert_eq!(
            absolutize(Path::new("~root/x"), home, None),
            Err(PathError::OtherUsersHome(PathBuf::from("~root/x")))
        );
        assert_eq!(absolutize(Path::new(""), home, None), Err(PathError::Empty));
    }

    #[test]
    fn within() {
        assert!(is_within(Path::new("/a/b"), Path::new("/a")));
        assert!(is_within(Path::new("/a"), Path::new("/a")));
        assert!(!is_within(Path::new("/ab"), Path::new("/a")));
    }
}
