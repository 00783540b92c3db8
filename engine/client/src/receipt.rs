//! A receipt as a client checks it: the engine signs a batch statement naming the Merkle root of
//! its receipts' statements, and each statement names the digest of its job's output.

use chimera_maml::PublicKey;
use chimera_proto::v1::{Job, JobState, Receipt};

use crate::merkle;

/// The first line of a batch statement.
pub const BATCH_HEADER: &str = "chimera-receipt-batch: 1\n";
/// The batch statement's line that names the Merkle root, before the root's hex.
pub const ROOT_KEY: &str = "merkle_root_sha3_256: ";

/// Whether `receipt` is the engine key's: its statement's Merkle path leads to the root that its
/// batch statement names, the signature is the key's over that batch statement, and the
/// statement's `result_sha3_512` is the digest of `output`.
pub fn check(receipt: &Receipt, engine_key: &PublicKey, output: &str) -> bool {
    let digest = hex::encode(chimera_maml::digest(output.as_bytes()));
    let states_output = receipt
        .statement
        .lines()
        .any(|l| l.strip_prefix("result_sha3_512: ") == Some(digest.as_str()));
    let Some(root) = merkle::root_from(
        merkle::leaf(receipt.statement.as_bytes()),
        &receipt.merkle_path,
    ) else {
        return false;
    };
    let root = hex::encode(root);
    let batch = &receipt.batch_statement;
    let names_root = batch.starts_with(BATCH_HEADER)
        && batch
            .lines()
            .any(|l| l.strip_prefix(ROOT_KEY) == Some(root.as_str()));
    states_output && names_root && engine_key.verify(batch.as_bytes(), &receipt.signature)
}

/// Whether the job's receipt is the engine's signature over its result (or its error, for a job
/// that did not succeed), under the key the receipt carries.
pub fn valid(job: &Job) -> bool {
    let Some(r) = &job.receipt else {
        return false;
    };
    let output = if job.state == JobState::Succeeded as i32 {
        &job.result_json
    } else {
        &job.error
    };
    PublicKey::from_bytes(&r.engine_public_key).is_ok_and(|key| check(r, &key, output))
}
