//! What the supervisor and a head say to each other over the head's Unix socket: one JSON object
//! per line.
//!
//! Key custody (`chimera_keys::custody`) travels here too: mailbox addresses and envelopes are
//! base64 of bytes the supervisor relays but cannot read.

use chimera_job::CheckedJob;
use serde::{Deserialize, Serialize};

/// The supervisor to a head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToHead {
    /// Run a job, as the door checked it.
    Run { job: Box<CheckedJob> },
    /// Stop the job at its next safe point.
    Cancel { job_id: String },
    /// The answer to `Hello`: make a first key, or (a rebuild of a head that died with a key
    /// of that epoch) collect the shares of the dead head's key.
    Keys {
        restore_epoch: Option<u32>,
        /// How many live peers hold a share of the key of `restore_epoch`. With fewer than
        /// `chimera_keys::shares::THRESHOLD` the key cannot be restored, and the head makes a new
        /// one at once rather than wait for shares that cannot come.
        restore_shares: u32,
        /// The other heads' ids.
        peers: Vec<String>,
    },
    /// A peer's mailbox, on its birth or rebuild.
    Peer { id: String, mailbox: String },
    /// Seal the share held of `owner`'s key to `owner`'s new mailbox.
    GiveShare { owner: String, mailbox: String },
    /// An envelope holding a share, relayed from the head `from`.
    TakeShare { from: String, envelope: String },
    /// Rotate: a new key of the next epoch, new shares to every peer.
    Rotate,
    /// A change to the replica of the head `from`'s sealed state that this head holds, or (a
    /// [`Replica::GivenBack`]) this head's own state given back by a peer that held it.
    Replica { from: String, replica: Replica },
    /// What the head keeps at rest under the operator's unseal key, sent before `Keys`: the
    /// engine's id and the key with which the head wraps its own keys in the data directory (so
    /// that a start of the whole engine gives them back), and for an AI head the key under which
    /// it seals the models it stores and opens them (the keyring's `models` key).
    AtRest {
        engine: String,
        wrapping_key: KeyText,
        models_key: Option<KeyText>,
    },
}

/// A key in base64, as a message carries it; `Debug` never shows it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyText(pub String);

impl std::fmt::Debug for KeyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyText(…)")
    }
}

/// A head to the supervisor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromHead {
    /// The first line a head sends.
    Hello {
        head_id: String,
        pid: u32,
        /// What it computes on, in words.
        backend: String,
        /// Its ML-KEM-768 mailbox address, for envelopes of key shares.
        mailbox: String,
    },
    Heartbeat,
    /// An envelope holding a key share, for the supervisor to relay to the head `to`: a share of
    /// this head's own key of `epoch`, or (`epoch` none) a peer's share given back to it.
    Share {
        to: String,
        envelope: String,
        epoch: Option<u32>,
    },
    /// A change to this head's sealed state, for the supervisor to relay to the peer `to`, which
    /// holds a replica of it; or a peer's state given back to it.
    Replica {
        to: String,
        replica: Replica,
    },
    /// The head seals with a key of `epoch` now: a first key, a rotation, or (`restored`) the
    /// rotation after restoring the dead head's key from its peers' shares.
    Keyed {
        epoch: u32,
        restored: bool,
        /// Files of its state re-sealed under the new key.
        resealed: u64,
        /// Files of its state sealed under a key it does not have, left closed.
        unreadable: u64,
        /// Files of its state that were missing or damaged, taken from its peers' replicas.
        #[serde(default)]
        recovered: u64,
    },
    Progress {
        job_id: String,
        progress: serde_json::Value,
    },
    Finished {
        job_id: String,
        outcome: Outcome,
        #[serde(default)]
        work: StatevectorWork,
    },
}

/// A head's sealed state as its peers replicate it. Places are paths relative to the owner's
/// state directory; the bytes (base64) are sealed, and only the owner's key opens them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Replica {
    /// The file at `place` holds `sealed` now.
    File { place: String, sealed: String },
    /// The directory at `place` holds these files now (names within it), and nothing else.
    Directory {
        place: String,
        files: Vec<SealedFile>,
    },
    /// The file or directory at `place` is gone.
    Removed { place: String },
    /// Forget the whole replica: the owner sends all of its state again after this.
    Cleared,
    /// The receiver's own state, as the sender held it, for the receiver's new life to recover
    /// what its state directory lost.
    GivenBack { files: Vec<SealedFile> },
}

/// A sealed file: its name or place, and its bytes as base64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedFile {
    pub name: String,
    pub sealed: String,
}

/// The gate passes a head made over statevectors for one job, and the bytes they read and wrote
/// (none, for an AI head).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatevectorWork {
    pub gate_passes: u64,
    pub bytes_moved: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The result, as JSON text.
    Succeeded(String),
    Failed(String),
    Cancelled,
}

/// One message as a line of JSON.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut line = serde_json::to_vec(message).expect("protocol messages serialise");
    line.push(b'\n');
    line
}
