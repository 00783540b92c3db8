//! The keyring: the keys that the unseal key wraps, in the data directory's `keyring.json`.
//!
//! Each is 32 random bytes wrapped (AES-256-GCM) under a key derived from the unseal key, bound to
//! the engine's id and the key's name:
//! - `data`: what the front door keeps (the journal's documents, checked jobs, results and
//!   receipts; the engine's identity key);
//! - `models`: stored models;
//! - `heads`: the root from which each head's key-wrapping key is derived, so that a head is
//!   given its own and not its peers'.
//!
//! Everything else at rest is sealed under these keys, never under the unseal key itself, so that
//! rewrapping (a new unseal key) rewrites this one file, whole or not at all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chimera_keys::wrapping::{self, Secret};
use serde::{Deserialize, Serialize};

use crate::{UnsealError, UnsealKey};

/// The keyring's file in the data directory.
pub const FILE: &str = "keyring.json";
const FORMAT: u32 = 1;
const NAMES: [&str; 3] = ["data", "models", "heads"];

/// The keyring as stored: nothing in it opens without the unseal key.
#[derive(Serialize, Deserialize)]
struct Stored {
    format: u32,
    /// The engine's id: random, made with the keyring, bound into every key it wraps.
    engine: String,
    /// The id of the unseal key that wraps it ([`UnsealKey::id`]).
    unseal_key_id: String,
    /// Each key, wrapped, in base64.
    keys: BTreeMap<String, String>,
}

/// The keyring, opened.
pub struct Keyring {
    engine: String,
    unseal_key_id: String,
    data: Secret,
    models: Secret,
    heads: Secret,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("engine", &self.engine)
            .field("unseal_key_id", &self.unseal_key_id)
            .finish_non_exhaustive()
    }
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// The id of the unseal key the data directory is sealed under, or `None` if it has no keyring.
pub fn expected_key(data_dir: &Path) -> Result<Option<String>, UnsealError> {
    Ok(read(data_dir)?.map(|stored| stored.unseal_key_id))
}

fn read(data_dir: &Path) -> Result<Option<Stored>, UnsealError> {
    let path = path(data_dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(UnsealError::Keyring {
                what: "read",
                path,
                error,
            });
        }
    };
    let stored: Stored = serde_json::from_slice(&bytes).map_err(|e| damaged(&path, e))?;
    if stored.format != FORMAT {
        return Err(damaged(
            &path,
            format!(
                "it is of format {}, and this engine reads format {FORMAT}: a newer release made it",
                stored.format
            ),
        ));
    }
    Ok(Some(stored))
}

fn damaged(path: &Path, detail: impl std::fmt::Display) -> UnsealError {
    UnsealError::KeyringDamaged {
        path: path.to_owned(),
        detail: detail.to_string(),
    }
}

/// The key that wraps the keyring's keys: derived, so the unseal key itself seals nothing.
fn wrapping_key(key: &UnsealKey) -> Secret {
    wrapping::derive(key.bytes(), b"chimera keyring v1")
}

fn purpose(engine: &str, name: &str) -> Vec<u8> {
    format!("chimera keyring v1 engine {engine} key {name}").into_bytes()
}

impl Keyring {
    /// Opens the data directory's keyring with `key`. Refuses another key by its id before
    /// anything is read further, and a keyring that does not open.
    pub fn open(data_dir: &Path, key: &UnsealKey, from: &str) -> Result<Option<Self>, UnsealError> {
        let Some(stored) = read(data_dir)? else {
            return Ok(None);
        };
        if stored.unseal_key_id != key.id() {
            return Err(UnsealError::WrongKey {
                data_dir: data_dir.to_owned(),
                expected: stored.unseal_key_id,
                given: key.id(),
                from: from.to_owned(),
            });
        }
        let path = path(data_dir);
        let wrapping_key = wrapping_key(key);
        let unwrap = |name: &str| {
            let wrapped = (stored.keys.get(name))
                .ok_or_else(|| damaged(&path, format!("it has no `{name}` key")))?;
            let wrapped = BASE64
                .decode(wrapped)
                .map_err(|e| damaged(&path, format!("its `{name}` key: {e}")))?;
            wrapping::unwrap(&wrapping_key, &purpose(&stored.engine, name), &wrapped)
                .map_err(|e| damaged(&path, format!("its `{name}` key: {e}")))
        };
        Ok(Some(Self {
            data: unwrap("data")?,
            models: unwrap("models")?,
            heads: unwrap("heads")?,
            engine: stored.engine,
            unseal_key_id: stored.unseal_key_id,
        }))
    }

    /// A new keyring for the data directory, wrapped under `key` and written there; refused
    /// ([`UnsealError::Exists`]) if the directory has one.
    pub fn create(data_dir: &Path, key: &UnsealKey) -> Result<Self, UnsealError> {
        let mut engine = [0u8; 16];
        getrandom::fill(&mut engine).expect("the operating system's random generator failed");
        let keyring = Self {
            engine: hex::encode(engine),
            unseal_key_id: key.id(),
            data: wrapping::new_secret(),
            models: wrapping::new_secret(),
            heads: wrapping::new_secret(),
        };
        let path = path(data_dir);
        let text = keyring.stored(key);
        chimera_files::write_new_via(&crate::unique_sibling(&path), &path, &text, 0o600).map_err(
            |error| match error.kind() {
                std::io::ErrorKind::AlreadyExists => UnsealError::Exists { path: path.clone() },
                _ => UnsealError::Keyring {
                    what: "write",
                    path: path.clone(),
                    error,
                },
            },
        )?;
        Ok(keyring)
    }

    /// Replaces the data directory's keyring with this one wrapped under `key`, whole or not at
    /// all.
    pub(crate) fn rewrap(&self, data_dir: &Path, key: &UnsealKey) -> Result<(), UnsealError> {
        let path = path(data_dir);
        let text = self.stored(key);
        chimera_files::write_via(&crate::unique_sibling(&path), &path, &text, 0o600).map_err(
            |error| UnsealError::Keyring {
                what: "write",
                path,
                error,
            },
        )
    }

    /// The keyring wrapped under `key`, as its file holds it.
    fn stored(&self, key: &UnsealKey) -> Vec<u8> {
        let wrapping_key = wrapping_key(key);
        let keys = NAMES
            .iter()
            .zip([&self.data, &self.models, &self.heads])
            .map(|(name, secret)| {
                let wrapped = wrapping::wrap(&wrapping_key, &purpose(&self.engine, name), secret);
                (name.to_string(), BASE64.encode(wrapped))
            })
            .collect();
        let stored = Stored {
            format: FORMAT,
            engine: self.engine.clone(),
            unseal_key_id: key.id(),
            keys,
        };
        serde_json::to_vec_pretty(&stored).expect("the keyring serialises")
    }

    /// The engine's id.
    pub fn engine(&self) -> &str {
        &self.engine
    }

    /// The id of the unseal key that wraps it.
    pub fn unseal_key_id(&self) -> &str {
        &self.unseal_key_id
    }

    /// The front door's data key.
    pub fn data(&self) -> &Secret {
        &self.data
    }

    /// The key of stored models.
    pub fn models(&self) -> &Secret {
        &self.models
    }

    /// The root of the heads' key-wrapping keys (for tests: a head is given its own key only).
    #[cfg(test)]
    pub(crate) fn heads_root(&self) -> &Secret {
        &self.heads
    }

    /// The key with which head `head` wraps its own keys at rest.
    pub fn head_wrapping_key(&self, head: &str) -> Secret {
        let purpose = format!(
            "chimera head wrapping v1 engine {} head {head}",
            self.engine
        );
        wrapping::derive(&self.heads, purpose.as_bytes())
    }
}
