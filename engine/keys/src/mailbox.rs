//! Envelopes for shares on their way through the supervisor, which relays bytes it cannot read.
//!
//! Each head life has a [`Mailbox`]: an ML-KEM-768 decapsulation key made at its start and never
//! written anywhere. Its [`MailboxAddress`] (the 1,184-byte encapsulation key) is public. To seal
//! to it: encapsulate a fresh shared secret, derive an AES-256-GCM key from it with HKDF-SHA3-256,
//! and encrypt under that key once. An envelope is `CHM1`, the 1,088-byte ML-KEM ciphertext, then
//! the AES-GCM ciphertext and tag. Its `context` (who sends what to whom) is associated data, so an
//! envelope relayed to another purpose does not open.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use ml_kem::kem::{Decapsulate, Encapsulate, KeyExport};
use ml_kem::{Ciphertext, DecapsulationKey, EncapsulationKey, MlKem768, Seed};
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"CHM1";
pub const ADDRESS_BYTES: usize = 1184;
const KEM_CIPHERTEXT_BYTES: usize = 1088;
/// Each envelope's AES key is used for one message only, so a fixed nonce never repeats under it.
const NONCE: [u8; 12] = [0; 12];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MailboxError {
    #[error(
        "not a mailbox address: an ML-KEM-768 encapsulation key is {ADDRESS_BYTES} bytes, this is {0}"
    )]
    NotAnAddress(usize),
    #[error("not an envelope (too short or without CHM1)")]
    NotAnEnvelope,
    #[error("the envelope does not open here: sealed to another mailbox or context, or altered")]
    DoesNotOpen,
}

/// Where envelopes to one head life are sent.
#[derive(Clone, PartialEq, Eq)]
pub struct MailboxAddress(EncapsulationKey<MlKem768>);

impl std::fmt::Debug for MailboxAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MailboxAddress(..)")
    }
}

impl MailboxAddress {
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes().to_vec()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MailboxError> {
        let key = ml_kem::Key::<EncapsulationKey<MlKem768>>::try_from(bytes)
            .map_err(|_| MailboxError::NotAnAddress(bytes.len()))?;
        EncapsulationKey::new(&key)
            .map(Self)
            .map_err(|_| MailboxError::NotAnAddress(bytes.len()))
    }

    /// Seals `message` so that only this address's mailbox opens it, and only for `context`.
    pub fn seal(&self, context: &[u8], message: &[u8]) -> Vec<u8> {
        let (kem_ciphertext, shared) = self.0.encapsulate();
        let cipher = envelope_cipher(&shared);
        let sealed = cipher
            .encrypt(
                &Nonce::from(NONCE),
                Payload {
                    msg: message,
                    aad: context,
                },
            )
            .expect("AES-GCM seals any plaintext under 64 GiB");
        [&MAGIC[..], &kem_ciphertext[..], &sealed].concat()
    }
}

fn envelope_cipher(shared: &[u8]) -> Aes256Gcm {
    let mut key = Zeroizing::new([0u8; 32]);
    hkdf::SimpleHkdf::<sha3::Sha3_256>::new(None, shared)
        .expand(b"chimera mailbox envelope v1", key.as_mut_slice())
        .expect("32 bytes is a valid HKDF length");
    Aes256Gcm::new_from_slice(key.as_slice()).expect("a 32-byte key")
}

/// A head life's ML-KEM-768 decapsulation key.
pub struct Mailbox(DecapsulationKey<MlKem768>);

impl Mailbox {
    pub fn generate() -> Self {
        let mut seed = Seed::default();
        crate::random(seed.as_mut());
        let mailbox = Self(DecapsulationKey::from_seed(seed));
        zeroize::Zeroize::zeroize(seed.as_mut_slice());
        mailbox
    }

    pub fn address(&self) -> MailboxAddress {
        MailboxAddress(self.0.encapsulation_key().clone())
    }

    pub fn open(
        &self,
        context: &[u8],
        envelope: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, MailboxError> {
        let body = envelope
            .strip_prefix(&MAGIC[..])
            .filter(|b| b.len() >= KEM_CIPHERTEXT_BYTES)
            .ok_or(MailboxError::NotAnEnvelope)?;
        let (kem_ciphertext, sealed) = body.split_at(KEM_CIPHERTEXT_BYTES);
        let kem_ciphertext = Ciphertext::<MlKem768>::try_from(kem_ciphertext)
            .map_err(|_| MailboxError::NotAnEnvelope)?;
        // ML-KEM decapsulation never fails: a wrong ciphertext gives another secret, and the
        // AES-GCM tag then refuses the envelope.
        let shared = self.0.decapsulate(&kem_ciphertext);
        envelope_cipher(&shared)
            .decrypt(
                &Nonce::from(NONCE),
                Payload {
                    msg: sealed,
                    aad: context,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| MailboxError::DoesNotOpen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_opens_in_its_mailbox_for_its_context_only() {
        let mailbox = Mailbox::generate();
        let address = MailboxAddress::from_bytes(&mailbox.address().to_bytes()).unwrap();
        let envelope = address.seal(b"share of a0 for q1", b"secret share");
        assert_eq!(
            mailbox
                .open(b"share of a0 for q1", &envelope)
                .unwrap()
                .as_slice(),
            b"secret share"
        );
        assert_eq!(
            mailbox.open(b"share of a0 for q0", &envelope),
            Err(MailboxError::DoesNotOpen)
        );
        assert_eq!(
            Mailbox::generate().open(b"share of a0 for q1", &envelope),
            Err(MailboxError::DoesNotOpen)
        );
    }

    #[test]
    fn an_altered_envelope_is_refused() {
        let mailbox = Mailbox::generate();
        let envelope = mailbox.address().seal(b"c", b"message");
        for i in [0, 4, 100, KEM_CIPHERTEXT_BYTES + 3, envelope.len() - 1] {
            let mut altered = envelope.clone();
            altered[i] ^= 0x80;
            assert!(mailbox.open(b"c", &altered).is_err(), "byte {i}");
        }
        assert_eq!(
            mailbox.open(b"c", b"CHM1"),
            Err(MailboxError::NotAnEnvelope)
        );
    }

    #[test]
    fn addresses_of_the_wrong_length_are_refused() {
        assert_eq!(
            MailboxAddress::from_bytes(&[0; 32]),
            Err(MailboxError::NotAnAddress(32))
        );
        let envelopes = [
            Mailbox::generate().address().seal(b"c", b"m"),
            Mailbox::generate().address().seal(b"c", b"m"),
        ];
        assert_ne!(envelopes[0], envelopes[1]);
    }
}
