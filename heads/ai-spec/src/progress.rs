//! What a training reports as it goes: the engine's heads send it as a job's progress, and
//! checkpoints keep its history.

use serde::{Deserialize, Serialize};

/// What one epoch achieved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochProgress {
    /// 1-based.
    pub epoch: usize,
    pub epochs: usize,
    pub learning_rate: f64,
    /// Mean training loss over the epoch's batches.
    pub loss: f32,
    pub train_accuracy: f64,
    pub val_loss: f32,
    pub val_accuracy: f64,
    /// Training samples per second in this epoch (forward, backward and update).
    pub samples_per_second: f64,
}
