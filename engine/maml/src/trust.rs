//! The trust store: the client keys the engine accepts jobs from, what each may run, and which
//! are revoked.
//!
//! On disk it is one JSON file, rewritten whole through a temporary file:
//!
//! ```json
//! { "version": 1,
//!   "keys": [ { "name": "lab-gateway", "key_id": "3f9a…", "public_key": "<base64 of 1952 bytes>",
//!               "allow": ["quantum_circuit", "training"], "added_at": "2026-11-23T10:00:00Z",
//!               "revoked_at": null } ] }
//! ```
//!
//! `allow` lists kinds of work ([`Work`]: what a job's blocks run, named as MAML types name it);
//! `"*"` allows every kind, and [`ADMIN`] lets the key read and cancel every client's jobs. A
//! revoked key stays listed, so that it cannot be added again by mistake under the same name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::keys::{KeyError, KeyId, PublicKey};
use crate::work::{ADMIN, ANY_TYPE, Work, allowable};

const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    // Not `source`: the message already carries the I/O error, so a chain would repeat it.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path} is not a trust store: {detail}")]
    Malformed { path: PathBuf, detail: String },
    #[error("a key named `{0}` is already trusted; pick another name or revoke that key first")]
    NameTaken(String),
    #[error("key {key_id} is already trusted as `{name}`")]
    KeyTaken { key_id: KeyId, name: String },
    #[error(
        "no trusted key is named or has the id `{0}`; `chimera trust list` shows the keys trusted"
    )]
    NoSuchKey(String),
    #[error("a key needs a name: letters, digits, `-`, `_` and `.`, 1 to 64 of them")]
    BadName,
    #[error(
        "a key must be allowed at least one job type (for example quantum_circuit, or `*` for every type)"
    )]
    NothingAllowed,
    #[error(
        "`{0}` is nothing a key can be allowed: give quantum_circuit, training, inference, \
         hybrid_workflow, `*` (all four) or admin (read and cancel every client's jobs)"
    )]
    UnknownPermission(String),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// A key the engine trusts.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub name: String,
    pub key: PublicKey,
    pub allow: Vec<String>,
    pub added_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl TrustedKey {
    pub fn allows(&self, work: Work) -> bool {
        self.allow.iter().any(|t| t == ANY_TYPE || t == work.name())
    }

    /// Whether it may read, follow and cancel every client's jobs. `*` does not grant it.
    pub fn is_admin(&self) -> bool {
        self.allow.iter().any(|t| t == ADMIN)
    }
}

#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    keys: Vec<TrustedKey>,
    by_id: HashMap<KeyId, usize>,
}

#[derive(Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    keys: Vec<KeyRecord>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRecord {
    name: String,
    key_id: String,
    public_key: String,
    allow: Vec<String>,
    added_at: Timestamp,
    revoked_at: Option<Timestamp>,
}

impl TrustStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a store file; a file that does not exist is an empty store.
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::new()),
            Err(error) => {
                return Err(TrustError::Io {
                    path: path.into(),
                    error,
                });
            }
        };
        let malformed = |detail: String| TrustError::Malformed {
            path: path.into(),
            detail,
        };
        let file: StoreFile = serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
        if file.version != FORMAT_VERSION {
            return Err(malformed(format!(
                "format version {} (this engine reads {FORMAT_VERSION})",
                file.version
            )));
        }
        let mut store = Self::new();
        for record in file.keys {
            let bytes = BASE64
                .decode(&record.public_key)
                .map_err(|e| malformed(format!("key `{}`: {e}", record.name)))?;
            let key = PublicKey::from_bytes(&bytes)?;
            // The id is derived, so a stored id that disagrees means the file was altered.
            if key.id().to_string() != record.key_id {
                return Err(malformed(format!(
                    "key `{}` is listed with id {} but its public key's id is {}",
                    record.name,
                    record.key_id,
                    key.id()
                )));
            }
            store.insert(TrustedKey {
                name: record.name,
                key,
                allow: record.allow,
                added_at: record.added_at,
                revoked_at: record.revoked_at,
            })?;
        }
        Ok(store)
    }

    pub fn save(&self, path: &Path) -> Result<(), TrustError> {
        let file = StoreFile {
            version: FORMAT_VERSION,
            keys: self
                .keys
                .iter()
                .map(|k| KeyRecord {
                    name: k.name.clone(),
                    key_id: k.key.id().to_string(),
                    public_key: BASE64.encode(k.key.to_bytes()),
                    allow: k.allow.clone(),
                    added_at: k.added_at,
                    revoked_at: k.revoked_at,
                })
                .collect(),
        };
        let json = serde_json::to_string_pretty(&file).expect("the store serialises");
        crate::files::write_atomically(path, json.as_bytes(), 0o644).map_err(|error| {
            TrustError::Io {
                path: path.into(),
                error,
            }
        })
    }

    /// Trusts `key` under `name` for the job types in `allow`.
    pub fn add(
        &mut self,
        name: &str,
        key: PublicKey,
        allow: Vec<String>,
        now: Timestamp,
    ) -> Result<&TrustedKey, TrustError> {
        let allow: Vec<String> = allow
            .iter()
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        // A store written before these names were checked may hold others: they allow nothing.
        if let Some(unknown) = allow.iter().find(|a| !allowable(a)) {
            return Err(TrustError::UnknownPermission(unknown.clone()));
        }
        self.insert(TrustedKey {
            name: name.to_owned(),
            key,
            allow,
            added_at: now,
            revoked_at: None,
        })?;
        Ok(self.keys.last().expect("just inserted"))
    }

    fn insert(&mut self, trusted: TrustedKey) -> Result<(), TrustError> {
        let valid_name = (1..=64).contains(&trusted.name.len())
            && trusted
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid_name {
            return Err(TrustError::BadName);
        }
        if trusted.allow.iter().all(|t| t.trim().is_empty()) {
            return Err(TrustError::NothingAllowed);
        }
        if self.keys.iter().any(|k| k.name == trusted.name) {
            return Err(TrustError::NameTaken(trusted.name));
        }
        if let Some(existing) = self.get(trusted.key.id()) {
            return Err(TrustError::KeyTaken {
                key_id: trusted.key.id(),
                name: existing.name.clone(),
            });
        }
        self.by_id.insert(trusted.key.id(), self.keys.len());
        self.keys.push(trusted);
        Ok(())
    }

    /// Revokes the key with this name or id (hex); jobs signed by it are refused from now on.
    pub fn revoke(&mut self, name_or_id: &str, now: Timestamp) -> Result<&TrustedKey, TrustError> {
        let key = self
            .keys
            .iter_mut()
            .find(|k| k.name == name_or_id || k.key.id().to_string() == name_or_id)
            .ok_or_else(|| TrustError::NoSuchKey(name_or_id.to_owned()))?;
        key.revoked_at.get_or_insert(now);
        Ok(key)
    }

    pub fn get(&self, id: KeyId) -> Option<&TrustedKey> {
        self.by_id.get(&id).map(|&i| &self.keys[i])
    }

    pub fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }
}
