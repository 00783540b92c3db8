//! Sealing with a head's AES-256 key.
//!
//! A sealed blob is `CHS1`, the key's epoch (u32, big-endian), a 12-byte nonce, then the
//! AES-256-GCM ciphertext and tag. The associated data binds it to the head, the key epoch, the
//! job and a sequence number ([`Binding`]): a blob moved to another job, another place in a
//! sequence or another head does not open.
//!
//! Nonces are a counter. That never repeats under one key because only a [`SealingKey`], which is
//! born in the process that uses it and never leaves it whole, can seal: a key restored from
//! shares is a [`HeadKey`] and can only open, until the head rotates to a new key of its own.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use sha3::{Digest, Sha3_256};
use zeroize::Zeroizing;

pub const KEY_BYTES: usize = 32;
const MAGIC: &[u8; 4] = b"CHS1";
const NONCE_BYTES: usize = 12;
const HEADER_BYTES: usize = MAGIC.len() + 4 + NONCE_BYTES;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("not a sealed blob (it does not start with CHS1 and a header)")]
    NotSealed,
    #[error(
        "sealed under key epoch {sealed} of its head, but this is epoch {held}: open it with \
         that epoch's key"
    )]
    OtherEpoch { sealed: u32, held: u32 },
    #[error(
        "the sealed blob does not open: altered, or sealed for another head, job or sequence number"
    )]
    DoesNotOpen,
    #[error("this key has sealed 2^64 blobs and must be rotated")]
    NoncesSpent,
}

/// What a sealed blob belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub job: &'a str,
    pub sequence: u64,
}

/// A head's AES-256 key for one epoch. It opens what was sealed under it; sealing takes a
/// [`SealingKey`].
pub struct HeadKey {
    head: String,
    epoch: u32,
    secret: Zeroizing<[u8; KEY_BYTES]>,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for HeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadKey")
            .field("head", &self.head)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl HeadKey {
    pub(crate) fn from_secret(head: &str, epoch: u32, secret: Zeroizing<[u8; KEY_BYTES]>) -> Self {
        let cipher = Aes256Gcm::new_from_slice(secret.as_slice()).expect("a 32-byte key");
        Self {
            head: head.to_owned(),
            epoch,
            secret,
            cipher,
        }
    }

    pub fn head(&self) -> &str {
        &self.head
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    pub(crate) fn secret(&self) -> &[u8; KEY_BYTES] {
        &self.secret
    }

    /// A commitment to the key (SHA3-256 over a label, the head, the epoch and the key), by which
    /// a key put together from shares is known to be the right one.
    pub fn check_value(&self) -> [u8; 32] {
        check_value(&self.head, self.epoch, &self.secret)
    }

    /// The epoch a sealed blob was sealed under, read from its header.
    pub fn epoch_of(sealed: &[u8]) -> Result<u32, SealError> {
        if sealed.len() < HEADER_BYTES || &sealed[..4] != MAGIC {
            return Err(SealError::NotSealed);
        }
        Ok(u32::from_be_bytes(
            sealed[4..8].try_into().expect("4 bytes"),
        ))
    }

    pub fn open(&self, binding: Binding<'_>, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let epoch = Self::epoch_of(sealed)?;
        if epoch != self.epoch {
            return Err(SealError::OtherEpoch {
                sealed: epoch,
                held: self.epoch,
            });
        }
        let nonce = Nonce::try_from(&sealed[8..HEADER_BYTES]).expect("12 bytes");
        let aad = self.associated_data(binding);
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &sealed[HEADER_BYTES..],
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::DoesNotOpen)
    }

    /// The label, then each field length-prefixed, so that no two bindings give the same bytes.
    fn associated_data(&self, binding: Binding<'_>) -> Vec<u8> {
        let mut aad = Vec::with_capacity(64 + self.head.len() + binding.job.len());
        aad.extend_from_slice(b"chimera sealed state v1");
        for field in [self.head.as_bytes(), binding.job.as_bytes()] {
            aad.extend_from_slice(&(field.len() as u64).to_be_bytes());
            aad.extend_from_slice(field);
        }
        aad.extend_from_slice(&self.epoch.to_be_bytes());
        aad.extend_from_slice(&binding.sequence.to_be_bytes());
        aad
    }
}

pub(crate) fn check_value(head: &str, epoch: u32, secret: &[u8; KEY_BYTES]) -> [u8; 32] {
    Sha3_256::new()
        .chain_update(b"chimera head key check v1")
        .chain_update((head.len() as u64).to_be_bytes())
        .chain_update(head)
        .chain_update(epoch.to_be_bytes())
        .chain_update(secret)
        .finalize()
        .into()
}

/// A head key born in this process: the only kind that seals.
#[derive(Debug)]
pub struct SealingKey {
    key: HeadKey,
    next_nonce: u64,
}

impl SealingKey {
    /// A new random key for `head` at `epoch`.
    pub fn generate(head: &str, epoch: u32) -> Self {
        let mut secret = Zeroizing::new([0u8; KEY_BYTES]);
        crate::random(secret.as_mut_slice());
        Self {
            key: HeadKey::from_secret(head, epoch, secret),
            next_nonce: 0,
        }
    }

    /// The key that comes after this one (the next epoch), as after a rotation.
    pub fn successor(key: &HeadKey) -> Self {
        Self::generate(&key.head, key.epoch + 1)
    }

    pub fn key(&self) -> &HeadKey {
        &self.key
    }

    /// The key without the power to seal, once a newer one replaces it.
    pub fn retire(self) -> HeadKey {
        self.key
    }

    pub fn seal(&mut self, binding: Binding<'_>, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let counter = self.next_nonce;
        self.next_nonce = counter.checked_add(1).ok_or(SealError::NoncesSpent)?;
        let mut nonce_bytes = [0u8; NONCE_BYTES];
        nonce_bytes[4..].copy_from_slice(&counter.to_be_bytes());
        let nonce = Nonce::try_from(&nonce_bytes[..]).expect("12 bytes");
        let aad = self.key.associated_data(binding);
        let ciphertext = self
            .key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("AES-GCM seals any plaintext under 64 GiB");
        let mut sealed = Vec::with_capacity(HEADER_BYTES + ciphertext.len());
        sealed.extend_from_slice(MAGIC);
        sealed.extend_from_slice(&self.key.epoch.to_be_bytes());
        sealed.extend_from_slice(&nonce_bytes);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(job: &str, sequence: u64) -> Binding<'_> {
        Binding { job, sequence }
    }

    #[test]
    fn what_is_sealed_opens_with_the_same_binding() {
        let mut key = SealingKey::generate("a0", 1);
        let sealed = key.seal(binding("job-1", 7), b"weights").unwrap();
        assert_eq!(
            key.key().open(binding("job-1", 7), &sealed).unwrap(),
            b"weights"
        );
    }

    #[test]
    fn a_blob_moved_to_another_job_sequence_or_head_does_not_open() {
        let mut key = SealingKey::generate("a0", 1);
        let sealed = key.seal(binding("job-1", 7), b"weights").unwrap();
        let refused = |r: Result<Vec<u8>, SealError>| assert_eq!(r, Err(SealError::DoesNotOpen));
        refused(key.key().open(binding("job-2", 7), &sealed));
        refused(key.key().open(binding("job-1", 8), &sealed));
        // The same secret under another head's name.
        let secret = Zeroizing::new(*key.key().secret());
        let other_head = HeadKey::from_secret("a1", 1, secret);
        refused(other_head.open(binding("job-1", 7), &sealed));
    }

    #[test]
    fn any_altered_byte_is_refused() {
        let mut key = SealingKey::generate("q0", 3);
        let sealed = key.seal(binding("j", 0), b"some state of a head").unwrap();
        for i in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[i] ^= 0x01;
            assert!(
                key.key().open(binding("j", 0), &altered).is_err(),
                "flipping byte {i} went unnoticed"
            );
        }
        assert!(
            key.key()
                .open(binding("j", 0), &sealed[..sealed.len() - 1])
                .is_err()
        );
        assert_eq!(
            key.key().open(binding("j", 0), b"CHS1"),
            Err(SealError::NotSealed)
        );
    }

    #[test]
    fn nonces_never_repeat_under_one_key() {
        let mut key = SealingKey::generate("q1", 1);
        let nonces: std::collections::HashSet<Vec<u8>> = (0..1000)
            .map(|_| key.seal(binding("j", 0), b"same").unwrap()[8..HEADER_BYTES].to_vec())
            .collect();
        assert_eq!(nonces.len(), 1000);
    }

    #[test]
    fn a_successor_is_a_new_key_of_the_next_epoch_and_opens_nothing_of_the_old() {
        let mut old = SealingKey::generate("a1", 4);
        let sealed = old.seal(binding("j", 1), b"x").unwrap();
        let new = SealingKey::successor(old.key());
        assert_eq!(new.key().epoch(), 5);
        assert_ne!(new.key().secret(), old.key().secret());
        assert_eq!(
            new.key().open(binding("j", 1), &sealed),
            Err(SealError::OtherEpoch { sealed: 4, held: 5 })
        );
        // Even a key of the same epoch number but another secret cannot open it.
        let impostor = SealingKey::generate("a1", 4);
        assert_eq!(
            impostor.key().open(binding("j", 1), &sealed),
            Err(SealError::DoesNotOpen)
        );
    }
}
