//! The operator's unseal key: 32 random bytes, held off the data volume, that wrap every key the
//! engine keeps at rest (issue 36), as Vault's seal and Docker Swarm's autolock do.
//!
//! Where it comes from, in this order: a file (`--unseal-key-file`, made by
//! `chimera unseal-key new`), a command whose standard output is the key (`--unseal-key-command`:
//! a KMS client, Vault, sops, systemd-creds, a mounted secret), or a file in the user's
//! configuration directory, made at the first start. A key inside the data directory is refused
//! wherever it comes from: a copy of the volume would carry the key beside what it protects.

mod command;
pub mod keyring;

use std::fs;
use std::path::{Path, PathBuf};

use sha3::{Digest, Sha3_256};
use zeroize::Zeroizing;

pub use command::TIMEOUT;
pub use keyring::Keyring;

/// Bytes of an unseal key.
pub const KEY_BYTES: usize = 32;

/// The name of the key file in the user's configuration directory (`…/chimera/`).
pub const DEFAULT_FILE: &str = "unseal.key";

/// An unseal key. Its bytes are wiped when it is dropped.
pub struct UnsealKey(Zeroizing<[u8; KEY_BYTES]>);

impl UnsealKey {
    fn from_slice(bytes: &[u8]) -> Option<Self> {
        let bytes: [u8; KEY_BYTES] = bytes.try_into().ok()?;
        Some(Self(Zeroizing::new(bytes)))
    }

    pub fn bytes(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }

    /// The key's id: the first 8 bytes of its SHA3-256, in hex. A data directory keeps it to say
    /// which key it expects, without revealing the key.
    pub fn id(&self) -> String {
        hex::encode(&Sha3_256::digest(self.0.as_slice())[..8])
    }
}

impl std::fmt::Debug for UnsealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UnsealKey({})", self.id())
    }
}

/// Where the operator says the key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file of 32 bytes, readable by its owner alone.
    File(PathBuf),
    /// A shell command whose standard output is the key (32 bytes, or them in hex or base64).
    Command(String),
    /// The file [`DEFAULT_FILE`] in the user's configuration directory, made if it is missing.
    ConfigDirectory,
}

/// A key, and where it came from.
#[derive(Debug)]
pub struct Found {
    pub key: UnsealKey,
    /// Where it came from, in words for the log.
    pub from: String,
    /// Whether it was made just now (the default file, at the first start).
    pub made: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum UnsealError {
    #[error(
        "the unseal key {path} is inside the data directory {data_dir}: a copy of the data volume \
         would carry the key beside what it protects. Keep it elsewhere (another disk, a secret \
         store) and give it with --unseal-key-file or --unseal-key-command"
    )]
    InsideDataDirectory { path: PathBuf, data_dir: PathBuf },
    #[error(
        "{path} already exists: an unseal key is never overwritten (what it wraps would be lost); choose another path"
    )]
    Exists { path: PathBuf },
    #[error("cannot {what} the unseal key {path}: {error}")]
    File {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "the unseal key {path} is {got} bytes; an unseal key is {KEY_BYTES} random bytes (make one with `chimera unseal-key new -o PATH`)"
    )]
    WrongLength { path: PathBuf, got: usize },
    #[error(
        "the unseal key {path} can be read by other users (mode {mode:o}); make it its owner's alone: chmod 600 {path}"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("the unseal-key command `{command}` could not be started: {error}")]
    CommandNotStarted {
        command: String,
        error: std::io::Error,
    },
    #[error("the unseal-key command `{command}` {status}{}", said(.stderr))]
    CommandFailed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("the unseal-key command `{command}` gave no answer within {} s and was stopped{}", TIMEOUT.as_secs(), said(.stderr))]
    CommandTimedOut { command: String, stderr: String },
    #[error(
        "the unseal-key command `{command}` printed {got} bytes that are not a key: it must print \
         the {KEY_BYTES} bytes themselves, or them as 64 hex digits or in base64{}", said(.stderr)
    )]
    CommandNotAKey {
        command: String,
        got: usize,
        stderr: String,
    },
    #[error(
        "no configuration directory for the default unseal key (neither XDG_CONFIG_HOME nor HOME \
         is set): give --unseal-key-file or --unseal-key-command"
    )]
    NoConfigDirectory,
    #[error(
        "the data directory {} is sealed under the unseal key {expected}, and no key was given \
         (none at the default place {} either): give the key it was sealed with, by \
         --unseal-key-file or --unseal-key-command",
        data_dir.display(), default.display()
    )]
    NoKey {
        data_dir: PathBuf,
        expected: String,
        default: PathBuf,
    },
    #[error(
        "the data directory {} is sealed under the unseal key {expected}, but the key from {from} \
         is {given}: give the key it was sealed with (a key's id is the first 8 bytes of its \
         SHA3-256, in hex). Nothing was changed",
        data_dir.display()
    )]
    WrongKey {
        data_dir: PathBuf,
        expected: String,
        given: String,
        from: String,
    },
    #[error(
        "the data directory {} is not sealed yet (it has no keyring.json): its first \
         `chimera serve` seals it",
        data_dir.display()
    )]
    NotSealed { data_dir: PathBuf },
    #[error(
        "the new unseal key is the one the data directory is sealed under ({id}): give another"
    )]
    SameKey { id: String },
    #[error("cannot {what} the keyring {path}: {error}")]
    Keyring {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "the keyring {path} cannot be read: {detail}. Restore the data directory's keyring.json \
         from a backup"
    )]
    KeyringDamaged { path: PathBuf, detail: String },
}

/// What a command wrote to its standard error, for a refusal's message.
fn said(stderr: &str) -> String {
    match stderr.trim() {
        "" => String::new(),
        text => format!("; it said: {text}"),
    }
}

/// Makes a new key at `path`: 32 random bytes, mode 0600, on the disk before this returns.
/// Refuses an existing file. The key is written whole to a temporary sibling and then linked into
/// place (a link never replaces a file), so two engines making the default key at once both end
/// up with the one that won, never with half a key.
pub fn new_key_file(path: &Path) -> Result<UnsealKey, UnsealError> {
    let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
    getrandom::fill(bytes.as_mut_slice()).expect("the operating system's random generator failed");
    chimera_files::write_new_via(&unique_sibling(path), path, bytes.as_slice(), 0o600).map_err(
        |error| match error.kind() {
            std::io::ErrorKind::AlreadyExists => UnsealError::Exists {
                path: path.to_owned(),
            },
            _ => UnsealError::File {
                what: "write",
                path: path.to_owned(),
                error,
            },
        },
    )?;
    Ok(UnsealKey(bytes))
}

/// A temporary name beside `path` that no other writer uses.
pub(crate) fn unique_sibling(path: &Path) -> PathBuf {
    let mut unique = [0u8; 8];
    getrandom::fill(&mut unique).expect("the operating system's random generator failed");
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".{}.new", hex::encode(unique)));
    path.with_file_name(name)
}

/// The data directory's keyring, opened with the key from `source`, or made (with the default
/// key, if that is where the key comes from) for a directory that has none. Nothing in the data
/// directory is changed unless the keyring is made.
pub fn unseal(source: &Source, data_dir: &Path) -> Result<Unsealed, UnsealError> {
    unseal_with(source, data_dir, config_directory().as_deref())
}

/// An opened keyring, and where its key came from.
#[derive(Debug)]
pub struct Unsealed {
    pub keyring: Keyring,
    pub key: Found,
    /// Whether the keyring was made just now: the data directory was not sealed before.
    pub made: bool,
}

/// [`unseal`], with the configuration directory given (`None`: there is none).
pub fn unseal_with(
    source: &Source,
    data_dir: &Path,
    config_dir: Option<&Path>,
) -> Result<Unsealed, UnsealError> {
    let expected = keyring::expected_key(data_dir)?;
    let found = match (&expected, source, config_dir) {
        (Some(expected), Source::ConfigDirectory, Some(dir)) if !default_file(dir).exists() => {
            return Err(UnsealError::NoKey {
                data_dir: data_dir.to_owned(),
                expected: expected.clone(),
                default: default_file(dir),
            });
        }
        _ => find_with(source, data_dir, config_dir)?,
    };
    if let Some(keyring) = Keyring::open(data_dir, &found.key, &found.from)? {
        return Ok(Unsealed {
            keyring,
            key: found,
            made: false,
        });
    }
    fs::create_dir_all(data_dir).map_err(|error| UnsealError::Keyring {
        what: "make the directory of",
        path: keyring::path(data_dir),
        error,
    })?;
    match Keyring::create(data_dir, &found.key) {
        Ok(keyring) => Ok(Unsealed {
            keyring,
            key: found,
            made: true,
        }),
        // Another engine sealed the directory just now: open what it made, under this key or not.
        Err(UnsealError::Exists { .. }) => {
            let keyring = Keyring::open(data_dir, &found.key, &found.from)?
                .expect("the keyring was there a moment ago");
            Ok(Unsealed {
                keyring,
                key: found,
                made: false,
            })
        }
        Err(e) => Err(e),
    }
}

/// The keyring of a sealed data directory, opened with the key from `source`; a directory not
/// sealed yet is refused (nothing is made): for the commands that read what an engine sealed.
pub fn open_keyring(source: &Source, data_dir: &Path) -> Result<Keyring, UnsealError> {
    open_keyring_with(source, data_dir, config_directory().as_deref())
}

fn open_keyring_with(
    source: &Source,
    data_dir: &Path,
    config_dir: Option<&Path>,
) -> Result<Keyring, UnsealError> {
    if keyring::expected_key(data_dir)?.is_none() {
        return Err(UnsealError::NotSealed {
            data_dir: data_dir.to_owned(),
        });
    }
    Ok(unseal_with(source, data_dir, config_dir)?.keyring)
}

/// What [`rewrap`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrapped {
    pub old_id: String,
    pub new_id: String,
}

/// Wraps the data directory's keyring under the key from `new`, in place of the one from
/// `current` (which must open it). The keyring is replaced whole or not at all: a crash leaves
/// it under one key or the other. An engine running on the directory goes on (it read its keys
/// at its start); from now on it starts with the new key only.
pub fn rewrap(data_dir: &Path, current: &Source, new: &Source) -> Result<Rewrapped, UnsealError> {
    rewrap_with(data_dir, current, new, config_directory().as_deref())
}

/// [`rewrap`], with the configuration directory given (`None`: there is none).
pub fn rewrap_with(
    data_dir: &Path,
    current: &Source,
    new: &Source,
    config_dir: Option<&Path>,
) -> Result<Rewrapped, UnsealError> {
    let keyring = open_keyring_with(current, data_dir, config_dir)?;
    let new_key = find_with(new, data_dir, config_dir)?.key;
    let old_id = keyring.unseal_key_id().to_owned();
    if new_key.id() == old_id {
        return Err(UnsealError::SameKey { id: old_id });
    }
    keyring.rewrap(data_dir, &new_key)?;
    Ok(Rewrapped {
        old_id,
        new_id: new_key.id(),
    })
}

fn default_file(config_dir: &Path) -> PathBuf {
    config_dir.join("chimera").join(DEFAULT_FILE)
}

/// The key from `source`, refused if it is inside `data_dir` or is not a key.
pub fn find(source: &Source, data_dir: &Path) -> Result<Found, UnsealError> {
    find_with(source, data_dir, config_directory().as_deref())
}

/// [`find`], with the configuration directory given (`None`: there is none).
pub fn find_with(
    source: &Source,
    data_dir: &Path,
    config_dir: Option<&Path>,
) -> Result<Found, UnsealError> {
    match source {
        Source::File(path) => {
            outside(path, data_dir)?;
            Ok(Found {
                key: read_key_file(path)?,
                from: format!("the file {}", path.display()),
                made: false,
            })
        }
        Source::Command(line) => Ok(Found {
            key: command::run(line, TIMEOUT)?,
            from: format!("the command `{line}`"),
            made: false,
        }),
        Source::ConfigDirectory => {
            let dir = config_dir.ok_or(UnsealError::NoConfigDirectory)?;
            let path = default_file(dir);
            outside(&path, data_dir)?;
            let made = !path.exists();
            if made {
                let parent = path.parent().expect("joined above");
                fs::create_dir_all(parent).map_err(|error| UnsealError::File {
                    what: "make the directory of",
                    path: path.clone(),
                    error,
                })?;
                match new_key_file(&path) {
                    // Another engine made it first: that is the one.
                    Ok(_) | Err(UnsealError::Exists { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(Found {
                key: read_key_file(&path)?,
                from: format!("the file {}", path.display()),
                made,
            })
        }
    }
}

/// The user's configuration directory: `$XDG_CONFIG_HOME`, else `$HOME/.config`.
fn config_directory() -> Option<PathBuf> {
    let set = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    set("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|home| PathBuf::from(home).join(".config")))
}

/// Refuses a key at `path` inside `data_dir` (both as they resolve, where they exist).
fn outside(path: &Path, data_dir: &Path) -> Result<(), UnsealError> {
    let data = fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    if resolved(path).starts_with(&data) {
        return Err(UnsealError::InsideDataDirectory {
            path: path.to_owned(),
            data_dir: data_dir.to_owned(),
        });
    }
    Ok(())
}

/// `path` with its directory resolved (links, `..`), where that directory exists: the file
/// itself may not exist yet.
fn resolved(path: &Path) -> PathBuf {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return path.to_owned();
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    fs::canonicalize(parent).map_or_else(|_| path.to_owned(), |dir| dir.join(name))
}

/// Reads a key file: 32 bytes, its owner's alone.
fn read_key_file(path: &Path) -> Result<UnsealKey, UnsealError> {
    let read_error = |error| UnsealError::File {
        what: "read",
        path: path.to_owned(),
        error,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).map_err(read_error)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(UnsealError::Exposed {
                path: path.to_owned(),
                mode: mode & 0o777,
            });
        }
    }
    let bytes = Zeroizing::new(fs::read(path).map_err(read_error)?);
    UnsealKey::from_slice(&bytes).ok_or(UnsealError::WrongLength {
        path: path.to_owned(),
        got: bytes.len(),
    })
}

#[cfg(test)]
mod tests;
