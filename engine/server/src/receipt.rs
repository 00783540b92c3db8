//! Receipts: the engine's ML-DSA-65 signature over what ran (MAML.md: "the job's SHA3-512, the
//! result's SHA3-512, the head that ran it, start and end times").
//!
//! The signed statement is UTF-8 text, one `key: value` per line, in this order:
//!
//! ```text
//! chimera-receipt: 1
//! job_id: urn:uuid:…
//! job_sha3_512: <hex of the SHA3-512 of the job's signed bytes>
//! outcome: succeeded | failed | cancelled
//! result_sha3_512: <hex of the SHA3-512 of the result JSON, or of the error text>
//! head: q0
//! attempts: 1
//! started_at: 2026-11-23T10:00:00Z
//! finished_at: 2026-11-23T10:00:01Z
//! engine_key_id: <hex>
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chimera_journal::Receipt;
use chimera_maml::{PublicKey, SecretKey};
use jiff::Timestamp;

pub struct Facts<'a> {
    pub job_id: &'a str,
    pub job_digest: &'a str,
    pub outcome: &'a str,
    /// The result JSON, or the error text.
    pub output: &'a str,
    pub head: &'a str,
    pub attempts: u32,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
}

pub fn sign(facts: &Facts, key: &SecretKey) -> Receipt {
    let engine_key_id = key.public_key().id().to_string();
    let started = facts.started_at.map(|t| t.to_string()).unwrap_or_default();
    let statement = format!(
        "chimera-receipt: 1\njob_id: {}\njob_sha3_512: {}\noutcome: {}\nresult_sha3_512: {}\nhead: {}\nattempts: {}\nstarted_at: {}\nfinished_at: {}\nengine_key_id: {}\n",
        facts.job_id,
        facts.job_digest,
        facts.outcome,
        hex::encode(chimera_maml::digest(facts.output.as_bytes())),
        facts.head,
        facts.attempts,
        started,
        facts.finished_at,
        engine_key_id,
    );
    let signature = BASE64.encode(key.sign(statement.as_bytes()));
    Receipt {
        statement,
        signature,
        engine_key_id,
    }
}

/// Whether `signature` is the engine key's signature of `statement`, and the statement's
/// `result_sha3_512` is the digest of `output`.
pub fn check(statement: &str, signature: &[u8], engine_key: &PublicKey, output: &str) -> bool {
    let digest = hex::encode(chimera_maml::digest(output.as_bytes()));
    engine_key.verify(statement.as_bytes(), signature)
        && statement
            .lines()
            .any(|l| l.strip_prefix("result_sha3_512: ") == Some(digest.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_checks_against_its_output_and_key_only() {
        let key = SecretKey::from_seed(&[7; 32]);
        let facts = Facts {
            job_id: "urn:uuid:1",
            job_digest: "ab",
            outcome: "succeeded",
            output: r#"{"counts":{"00":3}}"#,
            head: "q0",
            attempts: 1,
            started_at: Some(Timestamp::UNIX_EPOCH),
            finished_at: Timestamp::UNIX_EPOCH,
        };
        let receipt = sign(&facts, &key);
        let signature = BASE64.decode(&receipt.signature).unwrap();
        assert!(check(
            &receipt.statement,
            &signature,
            &key.public_key(),
            facts.output
        ));
        assert!(!check(
            &receipt.statement,
            &signature,
            &key.public_key(),
            "{}"
        ));
        let other = SecretKey::from_seed(&[8; 32]).public_key();
        assert!(!check(&receipt.statement, &signature, &other, facts.output));
        let altered = receipt.statement.replace("head: q0", "head: q1");
        assert!(!check(
            &altered,
            &signature,
            &key.public_key(),
            facts.output
        ));
    }
}
