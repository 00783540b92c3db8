//! What a head keeps at rest under the operator's unseal key: its own keys, wrapped in
//! `DATA/heads/ID.keys` (beside its state directory, whose files they seal), so that a start of
//! the whole engine gives them back; and, for an AI head, the key of stored models.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chimera_keys::wrapping::{Secret, unwrap_head_key, wrap_head_key};
use chimera_keys::{DataSealer, HeadKey};
use serde::{Deserialize, Serialize};

/// The keys the supervisor sent.
pub(crate) struct AtRest {
    engine: String,
    wrapping_key: Secret,
    pub models: Option<Arc<DataSealer>>,
}

/// The file of a head's wrapped keys.
#[derive(Serialize, Deserialize)]
struct Kept {
    keys: Vec<Wrapped>,
}

#[derive(Serialize, Deserialize)]
struct Wrapped {
    epoch: u32,
    /// Base64 of the key wrapped under the head's wrapping key.
    wrapped: String,
}

/// A 32-byte key from its base64.
pub(crate) fn key_from_text(text: &str) -> Option<Secret> {
    let bytes = zeroize::Zeroizing::new(BASE64.decode(text).ok()?);
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    (bytes.len() == key.len()).then(|| key.copy_from_slice(&bytes))?;
    Some(key)
}

impl AtRest {
    pub fn new(engine: String, wrapping_key: Secret, models_key: Option<Secret>) -> Self {
        Self {
            engine,
            wrapping_key,
            models: models_key.map(|key| Arc::new(DataSealer::new(key))),
        }
    }

    /// Where the keys of the head whose state directory is `state_dir` are kept.
    pub fn keys_file(state_dir: &Path) -> PathBuf {
        state_dir.with_extension("keys")
    }

    /// Writes `keys` (every key whose sealing may be in the state), wrapped, whole or not at
    /// all.
    pub fn keep<'k>(
        &self,
        state_dir: &Path,
        keys: impl Iterator<Item = &'k HeadKey>,
    ) -> std::io::Result<()> {
        let keys = keys
            .map(|key| Wrapped {
                epoch: key.epoch(),
                wrapped: BASE64.encode(wrap_head_key(&self.wrapping_key, &self.engine, key)),
            })
            .collect();
        let text = serde_json::to_vec(&Kept { keys }).expect("wrapped keys serialise");
        let path = Self::keys_file(state_dir);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        chimera_files::write_via(&path.with_extension("keys.new"), &path, &text, 0o600)
    }

    /// The keys of `head` that its life before a start of the whole engine kept; none if it
    /// kept none. A file that does not read, or a key that does not unwrap, is an error.
    pub fn kept(&self, head: &str, state_dir: &Path) -> Result<Vec<HeadKey>, String> {
        let path = Self::keys_file(state_dir);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let kept: Kept =
            serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let unwrap = |w: &Wrapped| {
            let wrapped = BASE64.decode(&w.wrapped).map_err(|e| e.to_string())?;
            unwrap_head_key(&self.wrapping_key, &self.engine, head, w.epoch, &wrapped)
                .map_err(|e| e.to_string())
        };
        let keys = kept.keys.iter().map(unwrap).collect::<Result<_, _>>();
        keys.map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use chimera_keys::SealingKey;
    use chimera_keys::wrapping::new_secret;

    use super::*;

    #[test]
    fn kept_keys_come_back_under_the_same_wrapping_key_only() {
        let data = tempfile::tempdir().unwrap();
        let state = data.path().join("heads/q0");
        let wrapping = new_secret();
        let at_rest = AtRest::new("e1".into(), wrapping.clone(), None);
        assert!(at_rest.kept("q0", &state).unwrap().is_empty());
        let (a, b) = (SealingKey::generate("q0", 3), SealingKey::generate("q0", 4));
        at_rest
            .keep(&state, [a.key(), b.key()].into_iter())
            .unwrap();
        let back = at_rest.kept("q0", &state).unwrap();
        let values: Vec<_> = back.iter().map(HeadKey::check_value).collect();
        assert_eq!(values, [a.key().check_value(), b.key().check_value()]);
        let stranger = AtRest::new("e1".into(), new_secret(), None);
        assert!(stranger.kept("q0", &state).is_err());
        let other_engine = AtRest::new("e2".into(), wrapping, None);
        assert!(other_engine.kept("q0", &state).is_err());
    }
}
