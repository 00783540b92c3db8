//! The engine's append-only audit log: submissions, refusals, head deaths, rebuilds, key rotations,
//! trusted and revoked client keys.
//!
//! One record per line, `{"hash":"HEX","record":{"seq":N,"at":"RFC 3339","event":"…",…}}`, where
//! `hash` is SHA3-256 of the previous line's hash (32 zero bytes before the first) followed by the
//! record's bytes exactly as written. Changing, removing or reordering a record breaks the chain at
//! that record. A chain alone can be recomputed by whoever edits the file, so the writers add
//! `checkpoint` records: an ML-DSA-65 signature by the engine's key over the hash of the record
//! before it, which no one without that key can forge. [`verify`] checks both.
//!
//! Several processes append (the engine, and `chimera trust` editing the trust store beside it):
//! each append holds an exclusive lock on the file and continues the chain from its last line.

mod log;
mod recorder;
mod verify;

pub use log::{AuditLog, CheckpointSigner};
pub use recorder::Recorder;
pub use verify::{Report, verify};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The file in an engine's data directory.
pub const FILE_NAME: &str = "audit.log";

/// Longest text kept from a client-supplied message: a refusal's message quotes the document.
const MAX_TEXT: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("audit log {path}, line {line}: {what}")]
    Broken {
        path: String,
        line: usize,
        what: String,
    },
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    EngineStarted {
        engine_key: String,
    },
    EngineStopped,
    /// A job accepted and journaled (a document submitted again is not a new record).
    Submitted {
        job: String,
        /// The document's `type`, as it claims.
        job_type: String,
        /// What its blocks run, as the trust store's allow lists name it (`training+inference`):
        /// what its key was checked for.
        runs: String,
        key: String,
        /// The signature block's SHA3-512 of the document, hex.
        digest: String,
    },
    /// A submission refused, with the reason a client was given.
    Refused {
        reason: String,
        message: String,
        /// SHA3-256 of the bytes submitted, hex: which document, without keeping it.
        document_sha3_256: String,
    },
    /// Refusals beyond the rate at which the log takes them one by one (a flood of bad
    /// documents), counted by reason, the first and the last of them.
    RefusalsCounted {
        by_reason: std::collections::BTreeMap<String, u64>,
        first: Timestamp,
        last: Timestamp,
    },
    HeadDown {
        head: String,
        reason: String,
    },
    /// A rebuilt head, its key restored from its peers' shares (`restored`) or not.
    HeadRebuilt {
        head: String,
        epoch: u32,
        restored: bool,
        seconds: f64,
        recovered_files: u64,
    },
    /// A head sealing under a key of a new epoch: its first key, or a rotation.
    HeadKeyed {
        head: String,
        epoch: u32,
    },
    /// Every head asked to rotate its key, by the engine's schedule or an operator.
    RotationRequested {
        by: String,
    },
    KeyTrusted {
        name: String,
        key_id: String,
        allow: Vec<String>,
    },
    KeyRevoked {
        name: String,
        key_id: String,
    },
    /// A damaged journal replaced by one of every record that read whole (`chimera journal
    /// repair`): how many were kept, the jobs (or tables) lost, and where the damaged file and
    /// the list of what was lost went.
    JournalRepaired {
        kept: usize,
        lost: Vec<String>,
        damaged_copy: String,
        lost_file: Option<String>,
    },
    /// The first record of a file begun when the one before it grew past its size: it chains
    /// from that file's last record, whose hash it repeats so that the file can be checked
    /// alone once older ones are archived or removed.
    Continued {
        /// The file the log went on from, as it was renamed: `audit.log.` and the number of
        /// its last record.
        previous: String,
        previous_hash: String,
    },
    /// ML-DSA-65 by the key `key_id` over [`checkpoint_message`] of the previous record's hash.
    Checkpoint {
        key_id: String,
        signature: String,
    },
}

impl Event {
    /// A refusal, its message cut to a bounded length.
    pub fn refused(reason: &str, message: &str, document: &[u8]) -> Self {
        use sha3::Digest;
        let message = match message.char_indices().nth(MAX_TEXT) {
            Some((end, _)) => format!("{}…", &message[..end]),
            None => message.to_owned(),
        };
        Event::Refused {
            reason: reason.to_owned(),
            message,
            document_sha3_256: hex::encode(sha3::Sha3_256::digest(document)),
        }
    }
}

/// One record as written: its place in the chain, when, and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    pub at: Timestamp,
    #[serde(flatten)]
    pub event: Event,
}

/// What a checkpoint signs: the hash of the record before it, so the whole chain up to there.
pub fn checkpoint_message(previous_hash: &[u8; 32]) -> Vec<u8> {
    format!(
        "chimera audit checkpoint v1\n{}",
        hex::encode(previous_hash)
    )
    .into_bytes()
}

fn chain(previous: &[u8; 32], record: &[u8]) -> [u8; 32] {
    use sha3::Digest;
    let mut hasher = sha3::Sha3_256::new();
    hasher.update(previous);
    hasher.update(record);
    hasher.finalize().into()
}

/// A line of the file, its record kept as the bytes that were hashed.
#[derive(Deserialize)]
struct Line<'a> {
    hash: &'a str,
    #[serde(borrow)]
    record: &'a serde_json::value::RawValue,
}

fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.display().to_string(),
        source,
    }
}
