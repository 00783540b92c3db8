//! Files written whole or not at all.

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
    chimera_files::write_via(&with_suffix(path, "tmp"), path, contents, mode)
}
