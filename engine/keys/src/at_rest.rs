//! Products sealed at rest under a data key that the unseal key wraps: the journal's documents,
//! checked jobs, results and receipts, the engine's identity key, stored models.
//!
//! A sealed value is `CHD1`, a 16-byte salt, a 12-byte nonce, then the AES-256-GCM ciphertext and
//! tag. Each [`DataSealer`] (one per process life) draws a random salt and seals under the key
//! that HKDF derives from the data key and that salt, with a counter for nonce: a salt is never
//! drawn twice, so a nonce never repeats under one key, however many values a life seals, and
//! sealing costs no derivation per value. The associated data is the value's place (its table
//! and id, or its path): a value moved to another place does not open.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};

use crate::wrapping::{Secret, derive};

const MAGIC: &[u8; 4] = b"CHD1";
const SALT_BYTES: usize = 16;
const NONCE_BYTES: usize = 12;
const HEADER_BYTES: usize = MAGIC.len() + SALT_BYTES + NONCE_BYTES;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("not a sealed value (it does not start with CHD1 and a header)")]
    NotSealed,
    #[error("the sealed value does not open: another data key, another place, or altered")]
    DoesNotOpen,
}

/// Seals and opens values under one data key.
pub struct DataSealer {
    root: Secret,
    salt: [u8; SALT_BYTES],
    cipher: Aes256Gcm,
    next_nonce: AtomicU64,
    /// The keys of other lives' salts met while opening.
    others: Mutex<HashMap<[u8; SALT_BYTES], Aes256Gcm>>,
}

impl std::fmt::Debug for DataSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataSealer").finish_non_exhaustive()
    }
}

impl DataSealer {
    pub fn new(data_key: Secret) -> Self {
        let mut salt = [0u8; SALT_BYTES];
        crate::random(&mut salt);
        let cipher = salted(&data_key, &salt);
        Self {
            root: data_key,
            salt,
            cipher,
            next_nonce: AtomicU64::new(0),
            others: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `bytes` are a sealed value (by their header: for telling an earlier release's
    /// plaintext files, whose formats never start so, from sealed ones).
    pub fn is_sealed(bytes: &[u8]) -> bool {
        bytes.starts_with(MAGIC) && bytes.len() >= HEADER_BYTES
    }

    /// `plaintext` sealed for `place`.
    pub fn seal(&self, place: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let counter = self.next_nonce.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0u8; NONCE_BYTES];
        nonce[4..].copy_from_slice(&counter.to_be_bytes());
        let payload = Payload {
            msg: plaintext,
            aad: place,
        };
        let sealed = (self.cipher.encrypt(&Nonce::from(nonce), payload))
            .expect("AES-GCM seals any plaintext under 64 GiB");
        let mut out = Vec::with_capacity(HEADER_BYTES + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// What `sealed` holds, if it was sealed for `place` under this data key.
    pub fn open(&self, place: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let body = sealed.strip_prefix(MAGIC).ok_or(OpenError::NotSealed)?;
        if body.len() < SALT_BYTES + NONCE_BYTES {
            return Err(OpenError::NotSealed);
        }
        let (salt, rest) = body.split_at(SALT_BYTES);
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        let salt: [u8; SALT_BYTES] = salt.try_into().expect("16 bytes");
        let nonce = Nonce::try_from(nonce).expect("12 bytes");
        let payload = Payload {
            msg: ciphertext,
            aad: place,
        };
        let opened = if salt == self.salt {
            self.cipher.decrypt(&nonce, payload)
        } else {
            let mut others = self.others.lock().unwrap_or_else(|p| p.into_inner());
            let cipher = others
                .entry(salt)
                .or_insert_with(|| salted(&self.root, &salt));
            cipher.decrypt(&nonce, payload)
        };
        opened.map_err(|_| OpenError::DoesNotOpen)
    }
}

fn salted(data_key: &Secret, salt: &[u8; SALT_BYTES]) -> Aes256Gcm {
    let purpose = [&b"chimera data v1 "[..], salt].concat();
    Aes256Gcm::new_from_slice(derive(data_key, &purpose).as_slice()).expect("a 32-byte key")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wrapping::new_secret;

    #[test]
    fn a_value_opens_for_its_place_under_its_data_key_in_any_life() {
        let key = new_secret();
        let sealer = DataSealer::new(key.clone());
        let sealed = sealer.seal(b"results/job-1", b"{\"counts\":{\"00\":512}}");
        assert!(!sealed.windows(6).any(|w| w == b"counts"));
        assert_eq!(
            sealer.open(b"results/job-1", &sealed).unwrap(),
            b"{\"counts\":{\"00\":512}}"
        );
        let next_life = DataSealer::new(key);
        assert_eq!(
            next_life.open(b"results/job-1", &sealed).unwrap(),
            b"{\"counts\":{\"00\":512}}"
        );
        assert_eq!(
            next_life.open(b"results/job-2", &sealed),
            Err(OpenError::DoesNotOpen)
        );
        let stranger = DataSealer::new(new_secret());
        assert_eq!(
            stranger.open(b"results/job-1", &sealed),
            Err(OpenError::DoesNotOpen)
        );
        assert_eq!(
            sealer.open(b"results/job-1", b"{\"counts\"}"),
            Err(OpenError::NotSealed)
        );
    }

    #[test]
    fn nonces_never_repeat_within_a_life_and_salts_differ_between_lives() {
        let key = new_secret();
        let sealer = DataSealer::new(key.clone());
        let headers: std::collections::HashSet<Vec<u8>> = (0..100)
            .map(|_| sealer.seal(b"p", b"x")[..HEADER_BYTES].to_vec())
            .collect();
        assert_eq!(headers.len(), 100);
        let other = DataSealer::new(key);
        assert_ne!(
            sealer.seal(b"p", b"x")[4..20],
            other.seal(b"p", b"x")[4..20]
        );
    }
}
