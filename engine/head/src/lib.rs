//! A CHIMERA head: one worker process that `chimera serve` starts for each head it runs
//! (`../shared/DESIGN.md`, "Process model"). It connects to the supervisor's socket, says hello,
//! keeps its keys and sealed state ([`HeadKeys`]) and runs the jobs it is sent, one at a time.
//!
//! A job comes as the door checked it ([`chimera_job::CheckedJob`]): its circuits' programs and
//! settings, its specs. A head never reads a MAML document. A quantum head runs circuits on the
//! simulator; an AI head trains and runs models with candle, a hybrid model's circuit layers
//! with them. A head that dies is rebuilt: a new process that restores the dead one's key from
//! its peers' shares and its sealed state from their replicas, and runs its job again.

mod ai;
mod at_rest;
mod blocks;
mod files;
pub mod head_keys;
pub mod models;
mod quantum;
mod replicas;
pub mod worker;

use std::path::PathBuf;

pub use blocks::{BlockFailure, JobFailure, error_chain};
pub use chimera_job::Role;
pub use head_keys::{HeadKeys, StateError};
pub use worker::{Executor, HEARTBEAT_INTERVAL, JobReport, WorkerError};

use crate::ai::{AiHead, ai_device};
use crate::blocks::Blocks;
use crate::quantum::QuantumHead;

/// Which head to be, and where.
#[derive(Debug, Clone)]
pub struct HeadOptions {
    /// The head's id (q0, q1, a0, a1).
    pub id: String,
    pub role: Role,
    /// The supervisor's socket for this head.
    pub socket: PathBuf,
    /// The engine's data directory: the head's sealed state (training runs and their
    /// checkpoints) in DIR/heads/ID, the replicas it holds of its peers' in DIR/replicas/ID,
    /// models in DIR/models, datasets named by file in DIR/data.
    pub data_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("the data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error("no simulator backend: {0}")]
    Backend(#[from] chimera_quantum::backend::BackendError),
    #[error(transparent)]
    Worker(#[from] WorkerError),
}

/// A head ends when the engine closes its socket (or kills it). A Ctrl-C, or a service manager's
/// SIGTERM to every process of the engine, reached the heads as well: one could die before the
/// engine began to stop, which counted as a head dying under its job (three such deaths fail a
/// job). The engine also starts heads in a process group of their own, away from the terminal's
/// signals; this covers the signals sent to all its processes.
fn only_the_engine_stops_this_head() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sets the disposition of a signal to "ignore", before any thread is started.
        unsafe {
            libc::signal(signal, libc::SIG_IGN);
        }
    }
}

/// Serves as the head `options` name until the engine closes its socket.
pub fn serve(options: &HeadOptions) -> Result<(), HeadError> {
    // First, so that every thread of the head (the simulator's pool among them) inherits it.
    chimera_supervisor::lower_priority(chimera_supervisor::HEAD_NICENESS);
    only_the_engine_stops_this_head();
    let keys = HeadKeys::new(&options.id, &options.data_dir);
    let data_dir = std::path::absolute(&options.data_dir)
        .map_err(|e| HeadError::DataDir(options.data_dir.clone(), e))?;
    let (id, socket) = (&options.id, &options.socket);
    match options.role {
        Role::Quantum => {
            let runner = QuantumHead::on_the_fastest_backend()?;
            let executor = Blocks { runner, data_dir };
            worker::serve(id, socket, keys, executor)?
        }
        Role::Ai => {
            chimera_ai::keep_freed_memory();
            let runner = AiHead {
                data_dir: data_dir.clone(),
                keys: keys.clone(),
                device: ai_device(),
                encoder: None,
            };
            let executor = Blocks { runner, data_dir };
            worker::serve(id, socket, keys, executor)?
        }
    }
    Ok(())
}
