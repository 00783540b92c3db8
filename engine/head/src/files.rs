//! Whole-or-nothing writes of a head's files: a crash leaves either the old file (or directory) or
//! the new one, and at worst a temporary sibling that every reader skips.

use std::path::{Path, PathBuf};

/// Ends the name of a file or directory being written, before it is renamed into place.
const TEMPORARY_SUFFIX: &str = ".sealing";

fn temporary(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TEMPORARY_SUFFIX);
    PathBuf::from(name)
}

fn is_temporary(path: &Path) -> bool {
    path.to_string_lossy().ends_with(TEMPORARY_SUFFIX)
}

/// Writes `bytes` to `path` (and its missing parents) through a sibling renamed over it. Sealed,
/// but the engine's user's alone all the same.
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    chimera_files::write_via(&temporary(path), path, bytes, 0o600)
}

/// Makes `dir` a directory holding exactly `files` (name, bytes), through a sibling directory
/// renamed over it.
pub(crate) fn replace_directory(dir: &Path, files: &[(&str, Vec<u8>)]) -> std::io::Result<()> {
    chimera_files::replace_directory_via(&temporary(dir), dir, files)
}

/// Removes the file or directory at `path`; one already gone is not an error.
pub(crate) fn remove(path: &Path) -> std::io::Result<()> {
    let removed = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match removed {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Every file under `dir` (none when it does not exist), but those being written.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            if is_temporary(&path) {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_replaced_whole_and_temporaries_are_not_listed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("runs/step-1");
        replace_directory(&dir, &[("a", b"1".to_vec()), ("b", b"2".to_vec())]).unwrap();
        replace_directory(&dir, &[("c", b"3".to_vec())]).unwrap();
        replace(&root.path().join("runs/other/file"), b"4").unwrap();
        std::fs::create_dir_all(temporary(&root.path().join("runs/step-2"))).unwrap();
        std::fs::write(temporary(&root.path().join("runs/x")), b"half").unwrap();
        assert_eq!(
            files_under(root.path()),
            [root.path().join("runs/other/file"), dir.join("c")]
        );
        remove(&dir).unwrap();
        remove(&dir).unwrap();
        assert_eq!(files_under(root.path()).len(), 1);
    }
}
