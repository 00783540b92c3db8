//! Files and directories written whole or not at all: through a temporary sibling whose bytes are
//! on the disk (`fsync`) before it is renamed over the old one, and the rename itself made durable
//! by syncing the parent directory. A crash leaves the old version or the new one, and at worst the
//! temporary, which the caller names so that its readers know to skip it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Writes `contents` to `path` through `temporary`, created with `mode` (so that a secret is never
/// readable by others, not even for a moment).
pub fn write_via(temporary: &Path, path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    write_temporary(temporary, contents, mode)?;
    fs::rename(temporary, path)?;
    sync_parent(path)
}

/// Writes `contents` to `path` as [`write_via`] does, unless `path` exists (then an error of kind
/// `AlreadyExists`): the file is linked into place, and a link never replaces a file, so of two
/// processes making it at once one wins whole and the other is told. `temporary` must be this
/// writer's own (two writers must not share it).
pub fn write_new_via(temporary: &Path, path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let linked =
        write_temporary(temporary, contents, mode).and_then(|()| fs::hard_link(temporary, path));
    let _ = fs::remove_file(temporary);
    linked?;
    sync_parent(path)
}

/// Writes `contents` to `temporary`, made with `mode`, and syncs it to the disk.
fn write_temporary(temporary: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(temporary)?;
    #[cfg(unix)]
    {
        // The mode given to open is masked by the umask and ignored for an existing file.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    file.write_all(contents)?;
    file.sync_all()
}

/// Makes `dir` a directory holding exactly `files` (name, bytes), through the directory
/// `temporary` renamed over it once every file is on the disk.
pub fn replace_directory_via(
    temporary: &Path,
    dir: &Path,
    files: &[(&str, Vec<u8>)],
) -> io::Result<()> {
    let _ = fs::remove_dir_all(temporary);
    fs::create_dir_all(temporary)?;
    for (name, bytes) in files {
        let mut file = File::create(temporary.join(name))?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    File::open(temporary)?.sync_all()?;
    let _ = fs::remove_dir_all(dir);
    fs::rename(temporary, dir)?;
    sync_parent(dir)
}

/// Moves `from` (a file, or a directory whose files are already on the disk) to `to`, and makes
/// the move survive a crash: both parent directories are synced after the rename.
pub fn rename_durably(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)?;
    sync_parent(to)?;
    sync_parent(from)
}

/// Syncs the directory holding `path`, so that a rename into it survives a crash.
fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => File::open(parent)?.sync_all(),
        None => File::open(".")?.sync_all(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_never_replaces_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring");
        write_new_via(&dir.path().join("a.tmp"), &path, b"first", 0o600).unwrap();
        let again = write_new_via(&dir.path().join("b.tmp"), &path, b"second", 0o600);
        assert_eq!(again.unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_file_is_replaced_whole_with_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let (path, temporary) = (dir.path().join("key"), dir.path().join("key.tmp"));
        write_via(&temporary, &path, b"old", 0o644).unwrap();
        write_via(&temporary, &path, b"new", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert!(!temporary.exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_directory_moves_whole_into_another() {
        let root = tempfile::tempdir().unwrap();
        let (from, to) = (root.path().join("run/model"), root.path().join("models/m1"));
        replace_directory_via(
            &root.path().join("run/model.partial"),
            &from,
            &[("w", b"1".to_vec())],
        )
        .unwrap();
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        rename_durably(&from, &to).unwrap();
        assert_eq!(fs::read(to.join("w")).unwrap(), b"1");
        assert!(!from.exists());
        let missing = rename_durably(&from, &root.path().join("models/m2")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_directory_is_replaced_whole() {
        let root = tempfile::tempdir().unwrap();
        let (dir, temporary) = (
            root.path().join("step-1"),
            root.path().join("step-1.partial"),
        );
        let files = [("a", b"1".to_vec()), ("b", b"2".to_vec())];
        replace_directory_via(&temporary, &dir, &files).unwrap();
        replace_directory_via(&temporary, &dir, &[("c", b"3".to_vec())]).unwrap();
        let mut names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["c"]);
        assert!(!temporary.exists());
    }
}
