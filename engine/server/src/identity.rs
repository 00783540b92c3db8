//! The engine's ML-DSA-65 identity key, which signs receipts and the audit log's checkpoints:
//! `engine.pub` readable beside the data, the secret sealed under the data key in
//! `engine.key.sealed`.
//!
//! A data directory from before sealing holds the secret as `engine.key`: it is sealed at the
//! first start with an unseal key, and the plaintext removed only once the sealed copy is on the
//! disk, so an engine killed in between finds both and finishes the job.

use std::path::{Path, PathBuf};

use chimera_keys::DataSealer;
use chimera_maml::{KeyError, SecretKey, write_key_pair};

use crate::EngineError;

/// What the sealed key is bound to.
const PLACE: &[u8] = b"engine.key";

pub fn engine_key_prefix(data_dir: &Path) -> PathBuf {
    data_dir.join("engine")
}

fn sealed_path(data_dir: &Path) -> PathBuf {
    engine_key_prefix(data_dir).with_extension("key.sealed")
}

/// The engine's identity key: opened from the data directory, sealed there from an older
/// release's plaintext, or made there on the first start.
pub fn engine_key(data_dir: &Path, sealer: &DataSealer) -> Result<SecretKey, EngineError> {
    let sealed = sealed_path(data_dir);
    let plaintext = engine_key_prefix(data_dir).with_extension("key");
    let key = if sealed.exists() {
        open(&sealed, sealer)?
    } else {
        let key = if plaintext.exists() {
            SecretKey::read_file(&plaintext)?
        } else {
            let key = SecretKey::generate()?;
            // The public half only: the secret goes to the sealed file alone.
            let files = write_key_pair(&key, &engine_key_prefix(data_dir), false)?;
            remove(&files.secret)?;
            key
        };
        let bytes = sealer.seal(PLACE, key.to_pem().as_bytes());
        chimera_files::write_via(&sealed.with_extension("new"), &sealed, &bytes, 0o600)
            .map_err(|error| io(&sealed, error))?;
        key
    };
    if plaintext.exists() {
        remove(&plaintext)?;
    }
    Ok(key)
}

fn open(sealed: &Path, sealer: &DataSealer) -> Result<SecretKey, EngineError> {
    let bytes = std::fs::read(sealed).map_err(|error| io(sealed, error))?;
    let pem = zeroize::Zeroizing::new(sealer.open(PLACE, &bytes).map_err(|e| {
        EngineError::SealedKey {
            path: sealed.display().to_string(),
            detail: e.to_string(),
        }
    })?);
    let pem = std::str::from_utf8(&pem).map_err(|e| EngineError::SealedKey {
        path: sealed.display().to_string(),
        detail: e.to_string(),
    })?;
    Ok(SecretKey::from_pem(pem, sealed)?)
}

fn remove(path: &Path) -> Result<(), EngineError> {
    std::fs::remove_file(path).map_err(|error| io(path, error))?;
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|error| io(parent, error))
}

fn io(path: &Path, error: std::io::Error) -> EngineError {
    EngineError::Key(KeyError::Write {
        path: path.to_owned(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use chimera_keys::wrapping::new_secret;

    use super::*;

    #[test]
    fn the_identity_key_is_sealed_made_or_upgraded_and_opens_again() {
        let dir = tempfile::tempdir().unwrap();
        let data_key = new_secret();
        let made = engine_key(dir.path(), &DataSealer::new(data_key.clone())).unwrap();
        let pem = made.to_pem();
        let on_disk: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(on_disk.len(), 2, "{on_disk:?}");
        assert!(dir.path().join("engine.pub").exists());
        let sealed = std::fs::read(sealed_path(dir.path())).unwrap();
        assert!(
            !sealed
                .windows(20)
                .any(|w| pem.as_bytes().windows(20).any(|p| p == w))
        );
        let again = engine_key(dir.path(), &DataSealer::new(data_key.clone())).unwrap();
        assert_eq!(again.public_key(), made.public_key());
        let refused = engine_key(dir.path(), &DataSealer::new(new_secret()));
        assert!(matches!(refused, Err(EngineError::SealedKey { .. })));

        // An older release's plaintext key is sealed and removed, and one left beside a sealed
        // copy (an upgrade killed half-way) is removed.
        let old = tempfile::tempdir().unwrap();
        let key = SecretKey::generate().unwrap();
        write_key_pair(&key, &engine_key_prefix(old.path()), false).unwrap();
        let plaintext = old.path().join("engine.key");
        let kept = std::fs::read(&plaintext).unwrap();
        let upgraded = engine_key(old.path(), &DataSealer::new(data_key.clone())).unwrap();
        assert_eq!(upgraded.public_key(), key.public_key());
        assert!(!plaintext.exists() && sealed_path(old.path()).exists());
        std::fs::write(&plaintext, kept).unwrap();
        let finished = engine_key(old.path(), &DataSealer::new(data_key)).unwrap();
        assert_eq!(finished.public_key(), key.public_key());
        assert!(!plaintext.exists());
    }
}
