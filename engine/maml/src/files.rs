//! Files written whole or not at all.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub(crate) fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    name.into()
}

/// Writes through a temporary file created with `mode` (so a secret is never readable by others,
/// not even for a moment) and renamed over `path`: a crash leaves the old file or the new one.
pub(crate) fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let temporary = with_suffix(path, "tmp");
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&temporary)?;
    #[cfg(unix)]
    {
        // The mode given to open is masked by the umask and ignored for an existing file.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&temporary, path)
}
