//! What the supervisor and a head say to each other over the head's Unix socket: one JSON object
//! per line.
//!
//! Key custody (`chimera_keys::custody`) travels here too: mailbox addresses and envelopes are
//! base64 of bytes the supervisor relays but cannot read.

use serde::{Deserialize, Serialize};

/// The supervisor to a head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToHead {
    /// Run a job: the MAML document as admitted.
    Run { job_id: String, document: String },
    /// Stop the job at its next safe point.
    Cancel { job_id: String },
    /// The answer to `Hello`: make a first key, or (a head born again after dying with a key of
    /// that epoch) collect the shares of the predecessor's key.
    Keys {
        restore_epoch: Option<u32>,
        /// The other heads' ids.
        peers: Vec<String>,
    },
    /// A peer's mailbox, on its birth or rebirth.
    Peer { id: String, mailbox: String },
    /// Seal the share held of `owner`'s key to `owner`'s new mailbox.
    GiveShare { owner: String, mailbox: String },
    /// An envelope holding a share, relayed from the head `from`.
    TakeShare { from: String, envelope: String },
    /// Rotate: a new key of the next epoch, new shares to every peer.
    Rotate,
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
    /// An envelope holding a key share, for the supervisor to relay to the head `to`.
    Share {
        to: String,
        envelope: String,
    },
    /// The head seals with a key of `epoch` now: a first key, a rotation, or (`restored`) the
    /// rotation after restoring its predecessor's key from its peers' shares.
    Keyed {
        epoch: u32,
        restored: bool,
        /// Files of its state re-sealed under the new key.
        resealed: u64,
        /// Files of its state sealed under a key it does not have, left closed.
        unreadable: u64,
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
