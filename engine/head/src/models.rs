//! Stored models sealed under the keyring's `models` key: each file of a model's directory
//! (`model.safetensors`, `spec.yaml`, `model.json`) sealed bound to its name. A model's files are
//! bound to one another by its id, a SHA3-256 of its weights and spec that opening checks.

use std::path::Path;
use std::sync::Arc;

use chimera_ai::checkpoint::Files;
use chimera_keys::DataSealer;

/// A stored model's files, sealed.
#[derive(Debug)]
pub struct ModelFiles(pub Arc<DataSealer>);

fn place(path: &Path) -> Vec<u8> {
    let name = path.file_name().unwrap_or_default().as_encoded_bytes();
    [&b"model file "[..], name].concat()
}

impl Files for ModelFiles {
    fn write_directory(&self, dir: &Path, contents: &[(&str, Vec<u8>)]) -> std::io::Result<()> {
        let sealed: Vec<(&str, Vec<u8>)> = contents
            .iter()
            .map(|(name, bytes)| (*name, self.0.seal(&place(Path::new(name)), bytes)))
            .collect();
        chimera_files::replace_directory_via(&dir.with_extension("partial"), dir, &sealed)
    }

    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let sealed = std::fs::read(path)?;
        (self.0.open(&place(path), &sealed))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
    }

    fn remove_directory(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::remove_dir_all(dir)
    }
}

/// Seals, each file whole or not at all, the files of `DATA/models/*/` that an earlier release
/// stored in plaintext; how many. Run again after a crash, it seals what is left.
pub fn seal_stored(data_dir: &Path, models: &Arc<DataSealer>) -> std::io::Result<usize> {
    let mut sealed = 0;
    let Ok(stored) = std::fs::read_dir(data_dir.join("models")) else {
        return Ok(0);
    };
    for model in stored {
        let model = model?.path();
        if !model.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&model)? {
            let path = file?.path();
            if path.is_dir() {
                continue;
            }
            let bytes = std::fs::read(&path)?;
            if DataSealer::is_sealed(&bytes) {
                continue;
            }
            let temporary = path.with_extension("sealing");
            chimera_files::write_via(
                &temporary,
                &path,
                &models.seal(&place(&path), &bytes),
                0o600,
            )?;
            sealed += 1;
        }
    }
    Ok(sealed)
}

#[cfg(test)]
mod tests {
    use chimera_keys::wrapping::new_secret;

    use super::*;

    #[test]
    fn a_models_files_are_sealed_and_an_earlier_releases_are_sealed_once() {
        let data = tempfile::tempdir().unwrap();
        let sealer = Arc::new(DataSealer::new(new_secret()));
        let files = ModelFiles(Arc::clone(&sealer));
        let dir = data.path().join("models/abc");
        std::fs::create_dir_all(data.path().join("models")).unwrap();
        files
            .write_directory(&dir, &[("model.json", b"{\"classes\": 10}".to_vec())])
            .unwrap();
        let on_disk = std::fs::read(dir.join("model.json")).unwrap();
        assert!(DataSealer::is_sealed(&on_disk));
        assert_eq!(
            files.read(&dir.join("model.json")).unwrap(),
            b"{\"classes\": 10}"
        );
        let other = ModelFiles(Arc::new(DataSealer::new(new_secret())));
        assert!(other.read(&dir.join("model.json")).is_err());

        let old = data.path().join("models/def");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("spec.yaml"), b"dataset: digits").unwrap();
        assert_eq!(seal_stored(data.path(), &sealer).unwrap(), 1);
        assert_eq!(seal_stored(data.path(), &sealer).unwrap(), 0);
        assert_eq!(
            files.read(&old.join("spec.yaml")).unwrap(),
            b"dataset: digits"
        );
        assert_eq!(
            files.read(&dir.join("model.json")).unwrap(),
            b"{\"classes\": 10}"
        );
    }
}
