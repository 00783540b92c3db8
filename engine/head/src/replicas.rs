//! The replicas a head holds of its peers' sealed state (`../shared/DESIGN.md`: "Each head's
//! sealed state is replicated to its peers"), one directory per owner under the holder's own
//! replica directory. The holder cannot open them: it keeps what each owner sends as the owner
//! sends it, and gives it back to the owner's rebuild.

use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::files;
use chimera_supervisor::protocol::{Replica, SealedFile};

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("`{0}` is not a place inside a head's state directory")]
    Place(String),
    #[error("the sealed bytes of `{place}` are not base64: {error}")]
    Encoding {
        place: String,
        error: base64::DecodeError,
    },
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("state given back is for the owner's new life, not a replica to hold")]
    GivenBack,
}

/// `place` as a relative path that stays inside the directory it is joined to.
pub(crate) fn place_path(place: &str) -> Result<PathBuf, ReplicaError> {
    let path = Path::new(place);
    let inside = path.components().count() > 0
        && path.components().all(|c| matches!(c, Component::Normal(_)));
    if inside {
        Ok(path.to_owned())
    } else {
        Err(ReplicaError::Place(place.to_owned()))
    }
}

pub(crate) fn decode(place: &str, sealed: &str) -> Result<Vec<u8>, ReplicaError> {
    BASE64
        .decode(sealed)
        .map_err(|error| ReplicaError::Encoding {
            place: place.to_owned(),
            error,
        })
}

pub(crate) fn base64(sealed: &[u8]) -> String {
    BASE64.encode(sealed)
}

pub(crate) fn encode(name: String, sealed: &[u8]) -> SealedFile {
    SealedFile {
        name,
        sealed: base64(sealed),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReplicaError + '_ {
    move |error| ReplicaError::Io {
        path: path.to_owned(),
        error,
    }
}

/// The replicas one head holds, under its `root` (`DATA/replicas/HOLDER`).
#[derive(Debug)]
pub(crate) struct ReplicaStore {
    root: PathBuf,
}

impl ReplicaStore {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn owner_dir(&self, owner: &str) -> Result<PathBuf, ReplicaError> {
        let owner = place_path(owner)?;
        if owner.components().count() != 1 {
            return Err(ReplicaError::Place(owner.display().to_string()));
        }
        Ok(self.root.join(owner))
    }

    /// Applies a change `owner` made to its state.
    pub(crate) fn apply(&self, owner: &str, replica: Replica) -> Result<(), ReplicaError> {
        let dir = self.owner_dir(owner)?;
        match replica {
            Replica::File { place, sealed } => {
                let path = dir.join(place_path(&place)?);
                files::replace(&path, &decode(&place, &sealed)?).map_err(io(&path))
            }
            Replica::Directory { place, files } => {
                let path = dir.join(place_path(&place)?);
                let contents = files
                    .iter()
                    .map(|f| {
                        let name = place_path(&f.name)?;
                        if name.components().count() != 1 {
                            return Err(ReplicaError::Place(f.name.clone()));
                        }
                        Ok((f.name.as_str(), decode(&f.name, &f.sealed)?))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io(parent))?;
                }
                files::replace_directory(&path, &contents).map_err(io(&path))
            }
            Replica::Removed { place } => {
                let path = dir.join(place_path(&place)?);
                files::remove(&path).map_err(io(&path))
            }
            Replica::Cleared => files::remove(&dir).map_err(io(&dir)),
            Replica::GivenBack { .. } => Err(ReplicaError::GivenBack),
        }
    }

    /// All this head holds of `owner`'s state, each file named by its place.
    pub(crate) fn held(&self, owner: &str) -> Result<Vec<SealedFile>, ReplicaError> {
        let dir = self.owner_dir(owner)?;
        files::files_under(&dir)
            .into_iter()
            .map(|path| {
                let sealed = std::fs::read(&path).map_err(io(&path))?;
                let place = path.strip_prefix(&dir).unwrap_or(&path);
                Ok(encode(place.to_string_lossy().into_owned(), &sealed))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, bytes: &[u8]) -> SealedFile {
        encode(name.to_owned(), bytes)
    }

    #[test]
    fn a_holder_keeps_what_the_owner_sends_and_gives_it_back() {
        let root = tempfile::tempdir().unwrap();
        let store = ReplicaStore::new(root.path().join("replicas/q1"));
        let directory = |place: &str, files: Vec<SealedFile>| Replica::Directory {
            place: place.into(),
            files,
        };
        store
            .apply("a0", directory("runs/j/step-1", vec![file("m", b"one")]))
            .unwrap();
        store
            .apply("a0", directory("runs/j/step-2", vec![file("m", b"two")]))
            .unwrap();
        store
            .apply(
                "a0",
                Replica::File {
                    place: "models/x".into(),
                    sealed: BASE64.encode(b"three"),
                },
            )
            .unwrap();
        store
            .apply(
                "a0",
                Replica::Removed {
                    place: "runs/j/step-1".into(),
                },
            )
            .unwrap();
        store
            .apply("q0", directory("runs/k", vec![file("m", b"other")]))
            .unwrap();
        let held = store.held("a0").unwrap();
        assert_eq!(
            held,
            [file("models/x", b"three"), file("runs/j/step-2/m", b"two")]
        );
        store.apply("a0", Replica::Cleared).unwrap();
        assert!(store.held("a0").unwrap().is_empty());
        assert_eq!(store.held("q0").unwrap().len(), 1);
    }

    #[test]
    fn places_that_leave_the_replica_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let store = ReplicaStore::new(root.path().join("replicas/q1"));
        for place in ["../q0/x", "/etc/passwd", "", "runs/../../x", "./"] {
            let change = Replica::File {
                place: place.into(),
                sealed: String::new(),
            };
            assert!(
                matches!(store.apply("a0", change), Err(ReplicaError::Place(_))),
                "{place}"
            );
        }
        let change = Replica::Directory {
            place: "runs/j".into(),
            files: vec![file("../../escape", b"x")],
        };
        assert!(matches!(
            store.apply("a0", change),
            Err(ReplicaError::Place(_))
        ));
        assert!(matches!(
            store.apply("..", Replica::Cleared),
            Err(ReplicaError::Place(_))
        ));
        assert!(matches!(
            store.apply("a0", Replica::GivenBack { files: vec![] }),
            Err(ReplicaError::GivenBack)
        ));
        assert!(files::files_under(root.path()).is_empty());
    }
}
