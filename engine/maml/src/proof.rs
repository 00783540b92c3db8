//! A client's proof that a request about a job comes from a key: its ML-DSA-65 signature over
//! the method, the job id and the time, sent beside the request (gRPC metadata or HTTP headers,
//! named by [`HEADERS`]). A job answers only the key that signed it, so `Get`, `Watch`, `Cancel`
//! and receipts need one where no client certificate says who asks.
//!
//! The signed message is `chimera-request-v1\n{method}\n{job id}\n{time}\n`, with the time as
//! sent (RFC 3339), under the FIPS 204 context `chimera-request`: a proof is no MAML signature,
//! and a MAML signature no proof. A proof holds for [`PROOF_SKEW`] either side of its time; one
//! seen on the wire can be replayed within that for the same method and job only, which on a
//! plaintext connection shows no more than the answer it was seen with.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use jiff::{SignedDuration, Timestamp};

use crate::keys::{KeyId, REQUEST_CONTEXT, SecretKey};
use crate::trust::{TrustStore, TrustedKey};

/// The names of the key id, time and signature, as gRPC metadata keys and HTTP headers.
pub const HEADERS: [&str; 3] = [
    "chimera-key-id",
    "chimera-request-time",
    "chimera-request-signature",
];

/// How far a proof's time may be from the engine's clock, either way.
pub const PROOF_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// A proof as sent: which key, when, and its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestProof {
    pub key_id: KeyId,
    /// The time as sent, which is what the signature covers.
    pub time: String,
    pub signature: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the request's `{header}` is not {expected}")]
    Malformed {
        header: &'static str,
        expected: &'static str,
    },
    #[error(
        "key {0} is not in the engine's trust store; a request is proved with the key that \
         signed the job"
    )]
    UnknownKey(KeyId),
    #[error("key `{0}` was revoked")]
    RevokedKey(String),
    #[error(
        "the request's proof was made at {time}, more than {} from the engine's clock ({now}); \
         make a new one (check this machine's clock)",
        PROOF_SKEW.as_mins()
    )]
    Stale { time: Timestamp, now: Timestamp },
    #[error("the request's proof does not verify under key {0}: it was made for another request")]
    BadSignature(KeyId),
}

fn message(method: &str, job_id: &str, time: &str) -> Vec<u8> {
    format!("chimera-request-v1\n{method}\n{job_id}\n{time}\n").into_bytes()
}

impl RequestProof {
    /// `key`'s proof that it asks `method` about `job_id` at `time`.
    pub fn sign(key: &SecretKey, method: &str, job_id: &str, time: Timestamp) -> Self {
        let time = time.to_string();
        Self {
            key_id: key.public_key().id(),
            signature: key.sign_in(REQUEST_CONTEXT, &message(method, job_id, &time)),
            time,
        }
    }

    /// The values of [`HEADERS`], in order.
    pub fn header_values(&self) -> [String; 3] {
        [
            self.key_id.to_string(),
            self.time.clone(),
            BASE64.encode(&self.signature),
        ]
    }

    /// A proof from the values of [`HEADERS`], in order; `None` when none was sent.
    pub fn from_header_values(values: [Option<&str>; 3]) -> Result<Option<Self>, ProofError> {
        let [key_id, time, signature] = values;
        if values.iter().all(Option::is_none) {
            return Ok(None);
        }
        let malformed = |header, expected| ProofError::Malformed { header, expected };
        let key_id = key_id
            .and_then(|k| k.parse().ok())
            .ok_or_else(|| malformed(HEADERS[0], "a key id (64 hex digits)"))?;
        let time = time
            .filter(|t| t.parse::<Timestamp>().is_ok())
            .ok_or_else(|| malformed(HEADERS[1], "an RFC 3339 time"))?
            .to_owned();
        let signature = signature
            .and_then(|s| BASE64.decode(s).ok())
            .ok_or_else(|| malformed(HEADERS[2], "base64 of an ML-DSA-65 signature"))?;
        Ok(Some(Self {
            key_id,
            time,
            signature,
        }))
    }

    /// The trusted key that asks `method` about `job_id`, if this proves it at `now`.
    pub fn check<'a>(
        &self,
        trust: &'a TrustStore,
        method: &str,
        job_id: &str,
        now: Timestamp,
    ) -> Result<&'a TrustedKey, ProofError> {
        let key = trust
            .get(self.key_id)
            .ok_or(ProofError::UnknownKey(self.key_id))?;
        if key.revoked_at.is_some() {
            return Err(ProofError::RevokedKey(key.name.clone()));
        }
        let time: Timestamp = self.time.parse().map_err(|_| ProofError::Malformed {
            header: HEADERS[1],
            expected: "an RFC 3339 time",
        })?;
        if time.duration_since(now).abs() > PROOF_SKEW {
            return Err(ProofError::Stale { time, now });
        }
        let message = message(method, job_id, &self.time);
        if !key
            .key
            .verify_in(REQUEST_CONTEXT, &message, &self.signature)
        {
            return Err(ProofError::BadSignature(self.key_id));
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(keys: &[(&str, &SecretKey)]) -> TrustStore {
        let mut store = TrustStore::new();
        for (name, key) in keys {
            let allow = vec!["quantum_circuit".to_owned()];
            store
                .add(name, key.public_key(), allow, Timestamp::UNIX_EPOCH)
                .unwrap();
        }
        store
    }

    #[test]
    fn a_proof_holds_for_its_method_job_and_time_only() {
        let alice = SecretKey::from_seed(&[1; 32]);
        let trust = store(&[("alice", &alice)]);
        let now: Timestamp = "2026-12-07T10:00:00Z".parse().unwrap();
        let proof = RequestProof::sign(&alice, "Get", "urn:uuid:1", now);
        let sent = proof.header_values();
        let read = RequestProof::from_header_values(sent.each_ref().map(|v| Some(v.as_str())))
            .unwrap()
            .unwrap();
        assert_eq!(read, proof);
        assert_eq!(
            read.check(&trust, "Get", "urn:uuid:1", now).unwrap().name,
            "alice"
        );
        assert_eq!(
            read.check(&trust, "Cancel", "urn:uuid:1", now).unwrap_err(),
            ProofError::BadSignature(alice.public_key().id())
        );
        assert!(matches!(
            read.check(&trust, "Get", "urn:uuid:2", now),
            Err(ProofError::BadSignature(_))
        ));
        let later = now + SignedDuration::from_mins(6);
        assert!(matches!(
            read.check(&trust, "Get", "urn:uuid:1", later),
            Err(ProofError::Stale { .. })
        ));
    }

    #[test]
    fn a_proof_by_a_key_not_trusted_or_revoked_or_garbled_is_refused() {
        let alice = SecretKey::from_seed(&[1; 32]);
        let mallory = SecretKey::from_seed(&[2; 32]);
        let mut trust = store(&[("alice", &alice)]);
        let now = Timestamp::now();
        let forged = RequestProof::sign(&mallory, "Get", "j", now);
        assert_eq!(
            forged.check(&trust, "Get", "j", now).unwrap_err(),
            ProofError::UnknownKey(mallory.public_key().id())
        );
        trust.revoke("alice", now).unwrap();
        let revoked = RequestProof::sign(&alice, "Get", "j", now);
        assert!(matches!(
            revoked.check(&trust, "Get", "j", now),
            Err(ProofError::RevokedKey(_))
        ));
        assert_eq!(RequestProof::from_header_values([None; 3]), Ok(None));
        let garbled = RequestProof::from_header_values([Some("zz"), Some("now"), Some("!")]);
        assert!(
            matches!(garbled, Err(ProofError::Malformed { .. })),
            "{garbled:?}"
        );
    }

    #[test]
    fn a_maml_signature_is_no_proof() {
        let alice = SecretKey::from_seed(&[1; 32]);
        let trust = store(&[("alice", &alice)]);
        let now = Timestamp::now();
        let time = now.to_string();
        let as_maml = RequestProof {
            key_id: alice.public_key().id(),
            signature: alice.sign(&message("Get", "j", &time)),
            time,
        };
        assert!(matches!(
            as_maml.check(&trust, "Get", "j", now),
            Err(ProofError::BadSignature(_))
        ));
    }
}
