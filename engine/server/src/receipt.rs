//! Receipts: the engine's ML-DSA-65 signature over what ran (MAML.md: "the job's SHA3-512, the
//! result's SHA3-512, the head that ran it, start and end times").
//!
//! Each job's statement is UTF-8 text, one `key: value` per line, in this order:
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
//!
//! Statements are signed in batches: an ML-DSA-65 signature costs more than everything else a
//! trivial job costs (benches/RESULTS.md), so under load the signer takes every statement waiting,
//! builds a Merkle tree over them ([`chimera_client::merkle`]) and signs one batch statement naming its
//! root:
//!
//! ```text
//! chimera-receipt-batch: 1
//! receipts: 37
//! merkle_root_sha3_256: <hex>
//! engine_key_id: <hex>
//! ```
//!
//! A receipt carries its statement, its Merkle path, the batch statement and the signature. A
//! checker hashes the statement up the path to a root, finds that root in the batch statement and
//! checks the signature over the batch statement. A job that ends alone gets a batch of one (an
//! empty path).

use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chimera_journal::{JobRecord, JobState, Receipt};
use chimera_maml::SecretKey;
use jiff::Timestamp;

use crate::metrics_names as m;
use chimera_client::merkle;
use chimera_client::receipt::{BATCH_HEADER, ROOT_KEY};

/// The engine's ML-DSA-65 identity: its secret key, with the public key and key id derived once:
/// deriving them expands the key's matrix, and every reply that carries a receipt needs them.
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

/// The engine's key signs the audit log's checkpoints.
impl chimera_audit::CheckpointSigner for EngineKey {
    fn key_id(&self) -> String {
        self.key_id.clone()
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.secret.sign(message)
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

fn statement(facts: &Facts, key: &EngineKey) -> String {
    let started = facts.started_at.map(|t| t.to_string()).unwrap_or_default();
    format!(
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
    )
}

/// The receipts of a batch of jobs (at least one), under one signature.
pub fn sign_batch(batch: &[Facts], key: &EngineKey) -> Vec<Receipt> {
    let statements: Vec<String> = batch.iter().map(|facts| statement(facts, key)).collect();
    let leaves: Vec<merkle::Hash> = statements
        .iter()
        .map(|s| merkle::leaf(s.as_bytes()))
        .collect();
    let (root, paths) = merkle::root_and_paths(&leaves);
    let batch_statement = format!(
        "{BATCH_HEADER}receipts: {}\n{ROOT_KEY}{}\nengine_key_id: {}\n",
        statements.len(),
        hex::encode(root),
        key.key_id,
    );
    let signature = BASE64.encode(key.secret.sign(batch_statement.as_bytes()));
    statements
        .into_iter()
        .zip(paths)
        .map(|(statement, merkle_path)| Receipt {
            statement,
            merkle_path,
            batch_statement: batch_statement.clone(),
            signature: signature.clone(),
            engine_key_id: key.key_id.clone(),
        })
        .collect()
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

/// Signs receipts on a thread of its own at a lower scheduling priority, every receipt waiting in
/// one batch (at most [`MAX_BATCH`]), and after each batch rests [`REST_PER_SIGNING`] times as
/// long as it took: a job that ends after a quiet spell is signed at once, while under load the
/// signatures take at most a tenth of one core, whatever a signature costs on the machine, and
/// acknowledging submissions keeps the rest. Without the rest the signer signed again as soon
/// as anything waited, and took a quarter of all CPU on this 2-core machine.
#[derive(Clone)]
pub struct Signer {
    requests: std::sync::mpsc::Sender<(Facts, tokio::sync::oneshot::Sender<(Receipt, Facts)>)>,
}

/// The niceness of the signing thread (0 is normal, 19 the lowest priority).
const SIGNER_NICENESS: i32 = 10;

/// The most receipts under one signature: a path then has at most 10 steps.
pub const MAX_BATCH: usize = 1024;

/// How many times as long as a batch took to sign the signer waits before the next one: under
/// load a job ends up to ten signatures' time later than it would, and signing takes a tenth of a
/// core.
pub const REST_PER_SIGNING: u32 = 9;

impl Signer {
    pub fn start(key: std::sync::Arc<EngineKey>) -> std::io::Result<Self> {
        let (requests, queue) =
            std::sync::mpsc::channel::<(Facts, tokio::sync::oneshot::Sender<_>)>();
        std::thread::Builder::new()
            .name("receipt-signer".into())
            .spawn(move || {
                chimera_supervisor::lower_priority(SIGNER_NICENESS);
                let mut rested_at = Instant::now();
                while let Ok(first) = queue.recv() {
                    std::thread::sleep(rested_at.saturating_duration_since(Instant::now()));
                    let signing = Instant::now();
                    let (batch, replies): (Vec<Facts>, Vec<_>) = std::iter::once(first)
                        .chain(queue.try_iter().take(MAX_BATCH - 1))
                        .unzip();
                    metrics::histogram!(m::RECEIPT_BATCH_SIZE).record(batch.len() as f64);
                    let receipts = sign_batch(&batch, &key);
                    rested_at = Instant::now() + signing.elapsed() * REST_PER_SIGNING;
                    for ((receipt, facts), reply) in receipts.into_iter().zip(batch).zip(replies) {
                        let _ = reply.send((receipt, facts));
                    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use chimera_client::receipt::check;

    fn facts(job: u32, output: &str) -> Facts {
        Facts {
            job_id: format!("urn:uuid:{job}"),
            job_digest: "ab".into(),
            outcome: "succeeded",
            output: output.into(),
            head: "q0".into(),
            attempts: 1,
            started_at: Some(Timestamp::UNIX_EPOCH),
            finished_at: Timestamp::UNIX_EPOCH,
        }
    }

    fn presented(receipt: &Receipt) -> chimera_proto::v1::Receipt {
        crate::convert::receipt(receipt, &[])
    }

    #[test]
    fn a_receipt_checks_against_its_output_and_key_only() {
        let secret = SecretKey::from_seed(&[7; 32]);
        let public = secret.public_key();
        let key = EngineKey::new(secret);
        let output = r#"{"counts":{"00":3}}"#;
        let receipt = presented(&sign_batch(&[facts(1, output)], &key)[0]);
        assert_eq!(key.public_key(), public.to_bytes());
        assert!(
            receipt
                .statement
                .contains(&format!("engine_key_id: {}\n", public.id()))
        );
        assert!(receipt.merkle_path.is_empty(), "a batch of one");
        assert!(check(&receipt, &public, output));
        assert!(!check(&receipt, &public, "{}"));
        let other = SecretKey::from_seed(&[8; 32]).public_key();
        assert!(!check(&receipt, &other, output));
        let mut altered = receipt.clone();
        altered.statement = receipt.statement.replace("head: q0", "head: q1");
        assert!(!check(&altered, &public, output));
    }

    #[test]
    fn each_receipt_of_a_batch_checks_alone_and_none_passes_for_another() {
        let secret = SecretKey::from_seed(&[7; 32]);
        let public = secret.public_key();
        let key = EngineKey::new(secret);
        let outputs: Vec<String> = (0..7).map(|i| format!("{{\"n\":{i}}}")).collect();
        let batch: Vec<Facts> = (0..7).map(|i| facts(i, &outputs[i as usize])).collect();
        let receipts: Vec<_> = sign_batch(&batch, &key).iter().map(presented).collect();
        for (i, receipt) in receipts.iter().enumerate() {
            assert!(check(receipt, &public, &outputs[i]), "receipt {i}");
            assert!(receipt.batch_statement.contains("receipts: 7\n"));
            assert!(
                receipt
                    .statement
                    .contains(&format!("job_id: urn:uuid:{i}\n"))
            );
            // Another job's statement on this receipt's path, or this one on another's path.
            let j = (i + 1) % receipts.len();
            let mut swapped = receipt.clone();
            swapped.statement = receipts[j].statement.clone();
            assert!(!check(&swapped, &public, &outputs[j]));
            swapped = receipt.clone();
            swapped.merkle_path = receipts[j].merkle_path.clone();
            assert!(!check(&swapped, &public, &outputs[i]));
        }
        let mut forged = receipts[0].clone();
        forged.batch_statement = forged.batch_statement.replace("receipts: 7", "receipts: 8");
        assert!(
            !check(&forged, &public, &outputs[0]),
            "the batch statement is signed"
        );
    }
}
