//! Keys kept at rest, wrapped: AES-256-GCM under a key-encryption key, with associated data that
//! says what the wrapped key is for (so a wrapped key moved to another purpose does not open).
//!
//! A key is wrapped a handful of times in its life (made, rewrapped), so its nonce is random:
//! 96 random bits do not repeat in so few uses.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use zeroize::Zeroizing;

use crate::sealing::{HeadKey, KEY_BYTES};

const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;

/// Bytes of a wrapped key: nonce, ciphertext, tag.
pub const WRAPPED_BYTES: usize = NONCE_BYTES + KEY_BYTES + TAG_BYTES;

/// A 32-byte secret, wiped when dropped.
pub type Secret = Zeroizing<[u8; KEY_BYTES]>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the wrapped key does not open: another wrapping key, another purpose, or altered")]
pub struct WrapError;

/// A new random secret.
pub fn new_secret() -> Secret {
    let mut secret = Zeroizing::new([0u8; KEY_BYTES]);
    crate::random(secret.as_mut_slice());
    secret
}

/// The secret that `root` derives for `purpose` (HKDF-SHA3-256): one root gives each holder
/// its own key without giving it the root.
pub fn derive(root: &[u8; KEY_BYTES], purpose: &[u8]) -> Secret {
    let mut key = Zeroizing::new([0u8; KEY_BYTES]);
    hkdf::SimpleHkdf::<sha3::Sha3_256>::new(None, root)
        .expand(purpose, key.as_mut_slice())
        .expect("32 bytes is a valid HKDF length");
    key
}

/// `secret` wrapped under `wrapping_key` for `purpose`.
pub fn wrap(wrapping_key: &[u8; KEY_BYTES], purpose: &[u8], secret: &[u8; KEY_BYTES]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_BYTES];
    crate::random(&mut nonce);
    let sealed = cipher(wrapping_key)
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: secret,
                aad: purpose,
            },
        )
        .expect("AES-GCM seals 32 bytes");
    [&nonce[..], &sealed].concat()
}

/// The secret in `wrapped`, if it was wrapped under `wrapping_key` for `purpose`.
pub fn unwrap(
    wrapping_key: &[u8; KEY_BYTES],
    purpose: &[u8],
    wrapped: &[u8],
) -> Result<Secret, WrapError> {
    if wrapped.len() != WRAPPED_BYTES {
        return Err(WrapError);
    }
    let (nonce, sealed) = wrapped.split_at(NONCE_BYTES);
    let nonce = Nonce::try_from(nonce).expect("12 bytes");
    let opened = Zeroizing::new(
        cipher(wrapping_key)
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: purpose,
                },
            )
            .map_err(|_| WrapError)?,
    );
    let mut secret = Zeroizing::new([0u8; KEY_BYTES]);
    secret.copy_from_slice(&opened);
    Ok(secret)
}

/// A head's key wrapped under the head's wrapping key, bound to the engine, the head and the
/// key's epoch: kept in the data directory, so that a start of the whole engine gives each head
/// its key back.
pub fn wrap_head_key(wrapping_key: &[u8; KEY_BYTES], engine: &str, key: &HeadKey) -> Vec<u8> {
    let purpose = head_key_purpose(engine, key.head(), key.epoch());
    wrap(wrapping_key, &purpose, key.secret())
}

/// The key of `head` at `epoch` that [`wrap_head_key`] wrapped: it opens what it sealed, and
/// seals nothing (the head rotates past it).
pub fn unwrap_head_key(
    wrapping_key: &[u8; KEY_BYTES],
    engine: &str,
    head: &str,
    epoch: u32,
    wrapped: &[u8],
) -> Result<HeadKey, WrapError> {
    let purpose = head_key_purpose(engine, head, epoch);
    let secret = unwrap(wrapping_key, &purpose, wrapped)?;
    Ok(HeadKey::from_secret(head, epoch, secret))
}

fn head_key_purpose(engine: &str, head: &str, epoch: u32) -> Vec<u8> {
    format!("chimera head key v1 engine {engine} head {head} epoch {epoch}").into_bytes()
}

fn cipher(key: &[u8; KEY_BYTES]) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(key).expect("a 32-byte key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_key_opens_under_its_wrapping_key_and_purpose_only() {
        let (kek, secret) = (new_secret(), new_secret());
        let wrapped = wrap(&kek, b"head q0 epoch 3", &secret);
        assert_eq!(wrapped.len(), WRAPPED_BYTES);
        assert!(
            !wrapped
                .windows(8)
                .any(|w| secret.windows(8).any(|s| s == w))
        );
        assert_eq!(
            *unwrap(&kek, b"head q0 epoch 3", &wrapped).unwrap(),
            *secret
        );
        assert_eq!(unwrap(&kek, b"head q0 epoch 4", &wrapped), Err(WrapError));
        assert_eq!(
            unwrap(&new_secret(), b"head q0 epoch 3", &wrapped),
            Err(WrapError)
        );
        for at in [0, 20, WRAPPED_BYTES - 1] {
            let mut altered = wrapped.clone();
            altered[at] ^= 1;
            assert_eq!(unwrap(&kek, b"head q0 epoch 3", &altered), Err(WrapError));
        }
        assert_eq!(
            unwrap(&kek, b"head q0 epoch 3", &wrapped[1..]),
            Err(WrapError)
        );
    }

    #[test]
    fn a_wrapped_head_key_opens_for_its_engine_head_and_epoch_only() {
        let mut key = crate::SealingKey::generate("q0", 7);
        let sealed = key
            .seal(
                crate::Binding {
                    job: "j",
                    sequence: 0,
                },
                b"state",
            )
            .unwrap();
        let kek = new_secret();
        let wrapped = wrap_head_key(&kek, "e1", key.key());
        let back = unwrap_head_key(&kek, "e1", "q0", 7, &wrapped).unwrap();
        assert_eq!(back.check_value(), key.key().check_value());
        let binding = crate::Binding {
            job: "j",
            sequence: 0,
        };
        assert_eq!(back.open(binding, &sealed).unwrap(), b"state");
        for (engine, head, epoch) in [("e2", "q0", 7), ("e1", "q1", 7), ("e1", "q0", 8)] {
            assert!(unwrap_head_key(&kek, engine, head, epoch, &wrapped).is_err());
        }
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_are_stable() {
        let root = new_secret();
        assert_eq!(*derive(&root, b"q0"), *derive(&root, b"q0"));
        assert_ne!(*derive(&root, b"q0"), *derive(&root, b"q1"));
        assert_ne!(*derive(&root, b"q0"), *derive(&new_secret(), b"q0"));
    }
}
