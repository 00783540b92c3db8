//! What the CLI tests share: running the binary, reading how a run ended, and where files are.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A file of the repository (an example, test data), by its path from the repository's root.
pub fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// An empty directory for one test's files, named after the test (`name`) and this process.
pub fn work_dir(name: &str) -> WorkDir {
    let dir = std::env::temp_dir().join(format!("chimera-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    WorkDir(dir)
}

/// A test's directory: removed when the test passes, kept for a look when it fails (an engine's
/// data directory is tens of MB, and CI machines run the tests many times).
pub struct WorkDir(PathBuf);

impl std::ops::Deref for WorkDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for WorkDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the test's files are kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The `chimera` binary the tests run: this build's, or `$CHIMERA_TEST_BINARY`, to run them
/// against another build (as a fix's regression tests are run against the code before it, to see
/// them fail there).
pub fn exe() -> std::ffi::OsString {
    std::env::var_os("CHIMERA_TEST_BINARY").unwrap_or_else(|| env!("CARGO_BIN_EXE_chimera").into())
}

pub fn chimera(args: &[&str]) -> Output {
    Command::new(exe())
        .args(args)
        .envs(unseal_key_beside(args))
        .output()
        .expect("run chimera")
}

/// The environment under which `chimera ARGS` keeps the default unseal key of its `--data-dir`
/// beside it (in `DATA.config/chimera/`), never in the user's configuration directory: the
/// same key for every run on that directory, and gone with the test's files.
pub fn unseal_key_beside<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
) -> Option<(&'static str, std::ffi::OsString)> {
    let at = args.iter().position(|a| a.as_ref() == "--data-dir")?;
    let mut config = args.get(at + 1)?.as_ref().to_owned();
    config.push(".config");
    Some(("XDG_CONFIG_HOME", config))
}

/// `out`, after asserting that the run succeeded (its stderr shown otherwise).
pub fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The run's stderr, after asserting that it failed (its stdout shown otherwise).
pub fn failure(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure, got: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every file under `dir`, with its bytes (not the heads' sockets, which only name an address).
pub fn files_under(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else if path.is_file() {
            files.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    files
}

/// Asserts that no file under `dir` holds any of `known` as it is: what a copy of the data
/// volume would give away.
pub fn assert_no_plaintext(dir: &Path, known: &[&str]) {
    for (path, bytes) in files_under(dir) {
        for plaintext in known {
            assert!(
                !bytes
                    .windows(plaintext.len())
                    .any(|w| w == plaintext.as_bytes()),
                "{plaintext:?} is in {} in plaintext",
                path.display()
            );
        }
    }
}
