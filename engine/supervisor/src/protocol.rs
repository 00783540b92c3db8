//! What the supervisor and a head say to each other over the head's Unix socket: one JSON object
//! per line.

use serde::{Deserialize, Serialize};

/// The supervisor to a head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToHead {
    /// Run a job: the MAML document as admitted.
    Run { job_id: String, document: String },
    /// Stop the job at its next safe point.
    Cancel { job_id: String },
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
    },
    Heartbeat,
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
