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
use chimera_journal::{JobRecord, JobState, Receipt};
use chimera_maml::{PublicKey, SecretKey};
use jiff::Timestamp;

/// The engine's ML-DSA-65 identity: its secret key, with the public key and key id derived once.
/// Deriving them costs about 0.17 ms here, and every reply that carries a receipt needs them.
pub struct EngineKey {
    secret: SecretKey,
    public_key: Vec<u8>,
    key_id: String,
}

impl EngineKey {
    pub fn new(secret: SecretKey) -> Self {
        let public = secret.public_key();
        Self {
            public_key: public.to_bytes(),
            key_id: public.id().to_string(),
            secret,
        }
    }

    /// The encoded public key (1952 bytes).
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// SHA3-256 of the public key, hex.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

pub struct Facts {
    pub job_id: String,
    pub job_digest: String,
    pub outcome: &'static str,
    /// The result JSON, or the error text.
    pub output: String,
    pub head: String,
    pub attempts: u32,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
}

pub fn sign(facts: &Facts, key: &EngineKey) -> Receipt {
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
        key.key_id,
    );
    let signature = BASE64.encode(key.secret.sign(statement.as_bytes()));
    Receipt {
        statement,
        signature,
        engine_key_id: key.key_id.clone(),
    }
}

/// Who runs the code blocks, as the History lines of a rendered receipt name it.
pub const ENGINE_NAME: &str = "gateway://chimera";

/// A finished job's receipt as MAML (MAML.md): its document with History lines appended, one
/// `[EXECUTE]` line per code block that ran and a `[RECEIPT]` line with the digests of the job
/// and its result, then signed with the engine's key in place of the client's signature block.
pub fn render_maml(
    record: &JobRecord,
    key: &EngineKey,
) -> Result<String, chimera_maml::ParseError> {
    let document = chimera_maml::parse(record.document.as_bytes(), usize::MAX)?;
    let status = match record.state {
        JobState::Succeeded => "Success",
        JobState::Failed => "Failure",
        _ => "Cancelled",
    };
    let head = record.head.as_deref().unwrap_or("none");
    let started = record.started_at.map(|t| t.to_string()).unwrap_or_default();
    let finished = record
        .finished_at
        .map(|t| t.to_string())
        .unwrap_or_default();
    let mut entries: Vec<String> = document
        .job
        .code_blocks
        .iter()
        .enumerate()
        .filter(|(_, block)| block.kind.is_runnable())
        .map(|(i, _)| {
            format!(
                "{started}: [EXECUTE] Code block {} run by head {head} of {ENGINE_NAME}. Status: {status}.",
                i + 1
            )
        })
        .collect();
    let output = record
        .result
        .as_deref()
        .or(record.error.as_deref())
        .unwrap_or("");
    entries.push(format!(
        "{finished}: [RECEIPT] Job SHA3-512 {}, result SHA3-512 {}, attempt {}, engine key {}.",
        record.digest,
        hex::encode(chimera_maml::digest(output.as_bytes())),
        record.attempts,
        key.key_id,
    ));
    let text = document.with_history(&entries)?;
    Ok(chimera_maml::sign_document(text.as_bytes(), &key.secret, usize::MAX)?.text)
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

/// Signs receipts on a thread of its own at a lower scheduling priority. A signature costs most of
/// a millisecond of CPU, four times a verification; when the machine is busy, acknowledging
/// submissions comes first and receipts follow as the CPU frees up.
#[derive(Clone)]
pub struct Signer {
    requests: std::sync::mpsc::Sender<(Facts, tokio::sync::oneshot::Sender<(Receipt, Facts)>)>,
}

/// The niceness of the signing thread (0 is normal, 19 the lowest priority).
const SIGNER_NICENESS: i32 = 10;

impl Signer {
    pub fn start(key: std::sync::Arc<EngineKey>) -> std::io::Result<Self> {
        let (requests, queue) =
            std::sync::mpsc::channel::<(Facts, tokio::sync::oneshot::Sender<_>)>();
        std::thread::Builder::new()
            .name("receipt-signer".into())
            .spawn(move || {
                lower_priority();
                for (facts, reply) in queue {
                    let _ = reply.send((sign(&facts, &key), facts));
                }
            })?;
        Ok(Self { requests })
    }

    /// The receipt for `facts`, and the facts back.
    pub async fn sign(&self, facts: Facts) -> Option<(Receipt, Facts)> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.requests.send((facts, reply)).ok()?;
        answer.await.ok()
    }
}

fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on this thread's own id; failure only leaves the priority as it was.
    unsafe {
        let thread = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, thread, SIGNER_NICENESS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_checks_against_its_output_and_key_only() {
        let secret = SecretKey::from_seed(&[7; 32]);
        let public = secret.public_key();
        let key = EngineKey::new(secret);
        let facts = Facts {
            job_id: "urn:uuid:1".into(),
            job_digest: "ab".into(),
            outcome: "succeeded",
            output: r#"{"counts":{"00":3}}"#.into(),
            head: "q0".into(),
            attempts: 1,
            started_at: Some(Timestamp::UNIX_EPOCH),
            finished_at: Timestamp::UNIX_EPOCH,
        };
        let receipt = sign(&facts, &key);
        assert_eq!(key.public_key(), public.to_bytes());
        assert!(
            receipt
                .statement
                .contains(&format!("engine_key_id: {}\n", public.id()))
        );
        let signature = BASE64.decode(&receipt.signature).unwrap();
        assert!(check(
            &receipt.statement,
            &signature,
            &public,
            &facts.output
        ));
        assert!(!check(&receipt.statement, &signature, &public, "{}"));
        let other = SecretKey::from_seed(&[8; 32]).public_key();
        assert!(!check(
            &receipt.statement,
            &signature,
            &other,
            &facts.output
        ));
        let altered = receipt.statement.replace("head: q0", "head: q1");
        assert!(!check(&altered, &signature, &public, &facts.output));
    }
}
