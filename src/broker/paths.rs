//! Paths resolved the way the kernel resolves them, so a rule about `/tmp/ws/**` is decided on
//! the file that will really be touched.
//!
//! Component by component from the root: every symlink is followed (a dangling one too: writing
//! through it creates its target), and `..` applies to the resolved prefix, not to the text
//! (`/tmp/ws/link/../x` with `link → /outside/a/b` is `/outside/a/x`). A path that cannot be
//! resolved safely (a loop, too many links, a component we may not inspect) is an error, which
//! makes the target opaque: no allow rule covers it.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// Linux gives up after 40 symlinks in one resolution (ELOOP); so do we.
const MAX_LINKS: usize = 40;

/// `path` (absolute) as the kernel will resolve it.
pub fn resolve(path: &Path) -> Result<PathBuf, String> {
    let mut queue: VecDeque<OsString> = components(path);
    let mut out = PathBuf::from("/");
    let mut links = 0;
    // Once a component does not exist, nothing below it can be a symlink.
    let mut missing = false;
    while let Some(c) = queue.pop_front() {
        match c.to_str() {
            Some("/") => out = PathBuf::from("/"),
            Some(".") => {}
            Some("..") => {
                out.pop();
            }
            _ => {
                let next = out.join(&c);
                if missing {
                    out = next;
                    continue;
                }
                match std::fs::symlink_metadata(&next) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        links += 1;
                        if links > MAX_LINKS {
                            return Err(format!(
                                "more than {MAX_LINKS} symlinks (a loop?) under `{}`",
                                out.display()
                            ));
                        }
                        let target = std::fs::read_link(&next).map_err(|e| {
                            format!("cannot read the link `{}`: {e}", next.display())
                        })?;
                        if target.is_absolute() {
                            out = PathBuf::from("/");
                        }
                        for part in components(&target).into_iter().rev() {
                            queue.push_front(part);
                        }
                    }
                    Ok(_) => out = next,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        missing = true;
                        out = next;
                    }
                    Err(e) => {
                        return Err(format!("cannot inspect `{}`: {e}", next.display()));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// `.` and `..` removed from the text alone: shown when the real resolution failed.
pub fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .map(|c| match c {
            Component::RootDir | Component::Prefix(_) => OsString::from("/"),
            Component::CurDir => OsString::from("."),
            Component::ParentDir => OsString::from(".."),
            Component::Normal(n) => n.to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Dirs {
        _tmp: tempfile::TempDir,
        root: PathBuf,
    }

    fn dirs() -> Dirs {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir_all(root.join("ws")).unwrap();
        std::fs::create_dir_all(root.join("outside/a/b")).unwrap();
        Dirs { _tmp: tmp, root }
    }

    #[test]
    fn dot_dot_applies_to_the_resolved_prefix() {
        let d = dirs();
        symlink(d.root.join("outside/a/b"), d.root.join("ws/link")).unwrap();
        let got = resolve(&d.root.join("ws/link/../x")).unwrap();
        assert_eq!(got, d.root.join("outside/a/x"));
        // The kernel agrees: writing through the path creates the file there.
        std::fs::write(d.root.join("ws/link/../x"), "k").unwrap();
        assert!(d.root.join("outside/a/x").exists());
        assert!(!d.root.join("ws/x").exists());
    }

    #[test]
    fn dangling_links_resolve_to_where_a_write_lands() {
        let d = dirs();
        symlink(d.root.join("outside/new.txt"), d.root.join("ws/dangling")).unwrap();
        assert_eq!(
            resolve(&d.root.join("ws/dangling")).unwrap(),
            d.root.join("outside/new.txt")
        );
        std::fs::write(d.root.join("ws/dangling"), "k").unwrap();
        assert!(d.root.join("outside/new.txt").exists());
        // Relative link targets resolve against the link's directory.
        symlink("../outside/a", d.root.join("ws/rel")).unwrap();
        assert_eq!(
            resolve(&d.root.join("ws/rel/b/../c")).unwrap(),
            d.root.join("outside/a/c")
        );
    }

    #[test]
    fn chains_that_climb_out_and_loops() {
        let d = dirs();
        symlink("..", d.root.join("ws/up")).unwrap();
        assert_eq!(
            resolve(&d.root.join("ws/up/outside/a")).unwrap(),
            d.root.join("outside/a")
        );
        assert_eq!(
            resolve(&d.root.join("ws/up/ws/up/../x")).unwrap(),
            d.root.parent().unwrap().join("x")
        );
        assert_eq!(
            resolve(&d.root.join("ws/../../../../../../../etc/passwd")).unwrap(),
            PathBuf::from("/etc/passwd")
        );
        symlink(d.root.join("ws/l2"), d.root.join("ws/l1")).unwrap();
        symlink(d.root.join("ws/l1"), d.root.join("ws/l2")).unwrap();
        assert!(resolve(&d.root.join("ws/l1/x")).is_err());
        assert!(resolve(&d.root.join("ws/l1")).is_err());
        // A path through a plain file cannot be inspected (ENOTDIR): not resolved safely.
        std::fs::write(d.root.join("ws/file"), "").unwrap();
        assert!(resolve(&d.root.join("ws/file/x")).is_err());
    }
}
