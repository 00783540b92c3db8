//! The trust store as the engine reads it: cached, and read again when its file changes.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use chimera_maml::{TrustStore, TrustedKey};

use crate::refusal::{Reason, Refused};

/// The trust store, read again whenever its file changes, so that `chimera trust add` and a
/// revocation take effect with the next submission.
pub struct TrustFile {
    path: std::path::PathBuf,
    cached: Mutex<(Option<SystemTime>, Arc<TrustStore>)>,
}

impl TrustFile {
    pub fn new(path: std::path::PathBuf) -> Self {
        Self {
            path,
            cached: Mutex::new((None, Arc::new(TrustStore::new()))),
        }
    }

    /// When the key named `name` was revoked, if it was. An unreadable store answers `None`
    /// (a submission then says why).
    pub fn revoked(&self, name: &str) -> Option<jiff::Timestamp> {
        self.read_key(name, |k| k.revoked_at)
            .ok()
            .flatten()
            .flatten()
    }

    /// `read` of the key trusted under `name`, revoked or not; `None` if no key has that name.
    pub fn read_key<T>(
        &self,
        name: &str,
        read: impl FnOnce(&TrustedKey) -> T,
    ) -> Result<Option<T>, Refused> {
        let store = self.current()?;
        Ok(store.keys().iter().find(|k| k.name == name).map(read))
    }

    /// The store as its file now reads.
    pub(crate) fn current(&self) -> Result<Arc<TrustStore>, Refused> {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if cached.0 != modified || modified.is_none() {
            let store = TrustStore::load(&self.path).map_err(|e| {
                Reason::TrustStoreUnreadable
                    .refused(format!("the engine cannot read its trust store: {e}"))
            })?;
            *cached = (modified, Arc::new(store));
        }
        Ok(Arc::clone(&cached.1))
    }
}
