//! What a head reports of a job: its result and its progress, one type each, written by the head
//! and read by the engine, the CLI and the HTTP door. Both are written as canonical JSON (keys in
//! order), as results have always been written: a receipt signs the digest of those bytes.

use std::collections::BTreeMap;

use chimera_ai_spec::EpochProgress;
use chimera_circuit::memory::Precision;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A finished job's result: its one block's, or each block's in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JobResult {
    Blocks { blocks: Vec<BlockResult> },
    Block(BlockResult),
}

/// What one block gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BlockResult {
    Circuit(CircuitResult),
    Training(TrainingResult),
    Inference(InferenceResult),
    Embeddings(Embeddings),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitResult {
    pub num_qubits: usize,
    pub gates: usize,
    pub shots: u64,
    pub seed: u64,
    pub precision: Precision,
    /// What it ran on, in words.
    pub backend: String,
    /// Each measured bit string, and how many shots gave it.
    pub counts: BTreeMap<String, u64>,
    pub expectation_values: Vec<Expectation>,
    pub simulate_ms: f64,
    pub gate_passes: u64,
}

/// An observable of the job's Context and its expectation value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub observable: String,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingResult {
    /// The stored model's id, which a `chimera-infer` block names.
    pub model_id: String,
    pub val_accuracy: f64,
    pub epochs: usize,
    pub train_samples: usize,
    pub val_samples: usize,
    pub parameters: usize,
    pub seconds: f64,
    /// Whether it went on from a checkpoint that a head which died under it left.
    pub resumed_from_checkpoint: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceResult {
    pub model_id: String,
    /// The most likely class of each input row.
    pub classes: Vec<usize>,
    pub probabilities: Vec<Vec<f32>>,
}

/// A sentence encoder's embeddings, one per sentence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Embeddings {
    pub dimension: usize,
    pub embeddings: Vec<Vec<f32>>,
}

/// What a head says of a job as it runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Progress {
    /// A training epoch ended.
    Epoch(EpochProgress),
    /// A checkpoint was kept: the engine keeps the job for the head's rebuild if the head dies.
    Checkpoint { checkpoint: Checkpointed },
    /// A training went on from the checkpoint a dead head left (named under the data directory).
    Resumed { resumed_from: String },
    /// The checkpoint a dead head left does not open; the training starts again.
    CheckpointUnreadable {
        checkpoint_unreadable: String,
        reason: String,
        training: String,
    },
    /// Block `block` of `of`, at `line` of the document, is done.
    BlockDone {
        block: usize,
        of: usize,
        line: usize,
        done: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpointed {
    pub step: usize,
}

/// `report` as canonical JSON: through a JSON value, whose keys serialise in order.
fn canonical<T: Serialize>(report: &T) -> Value {
    serde_json::to_value(report).expect("reports are plain data")
}

impl JobResult {
    /// A job's result from its blocks' results, in order.
    pub fn of_blocks(mut results: Vec<BlockResult>) -> Self {
        match results.len() {
            1 => Self::Block(results.pop().expect("one")),
            _ => Self::Blocks { blocks: results },
        }
    }

    pub fn to_value(&self) -> Value {
        canonical(self)
    }

    /// The text the journal keeps and a receipt's digest is of.
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }
}

impl Progress {
    pub fn to_value(&self) -> Value {
        canonical(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Results as heads wrote them before they were typed (a Bell job's from the hostile test's
    /// journal; a training's and an inference's in the same form): each reads as its type and
    /// writes back to the same bytes, which the receipts already signed.
    #[test]
    fn results_written_before_the_types_read_and_write_back_the_same() {
        let circuit = r#"{"backend":"cpu (avx512f, 2 threads)","counts":{"00":2,"11":6},"expectation_values":[],"gate_passes":1,"gates":2,"num_qubits":2,"precision":"single","seed":18113172085848113061,"shots":8,"simulate_ms":0.102162}"#;
        let training = r#"{"epochs":3,"model_id":"8f5a","parameters":650,"resumed_from_checkpoint":false,"seconds":0.41,"train_samples":1438,"val_accuracy":0.9721,"val_samples":359}"#;
        let inference = r#"{"classes":[1],"model_id":"8f5a","probabilities":[[0.30000001192092896,0.699999988079071]]}"#;
        let both = format!(r#"{{"blocks":[{training},{inference}]}}"#);
        for written in [circuit, training, inference, &both] {
            let read: JobResult = serde_json::from_str(written).unwrap();
            assert_eq!(read.to_json(), written);
        }
        let read: JobResult = serde_json::from_str(circuit).unwrap();
        let JobResult::Block(BlockResult::Circuit(bell)) = read else {
            panic!("{read:?}");
        };
        assert_eq!((bell.counts["11"], bell.precision), (6, Precision::Single));
        let JobResult::Blocks { blocks } = serde_json::from_str(&both).unwrap() else {
            panic!("two blocks read as one");
        };
        assert!(matches!(
            &blocks[..],
            [BlockResult::Training(_), BlockResult::Inference(_)]
        ));
    }

    #[test]
    fn progress_reads_as_its_kind_and_writes_back_the_same() {
        let epoch = r#"{"epoch":1,"epochs":3,"learning_rate":0.001,"loss":0.30000001192092896,"samples_per_second":5000.0,"train_accuracy":0.9,"val_accuracy":0.95,"val_loss":0.25}"#;
        let checkpoint = r#"{"checkpoint":{"step":20}}"#;
        let done = r#"{"block":1,"done":true,"line":12,"of":2}"#;
        for written in [epoch, checkpoint, done] {
            let read: Progress = serde_json::from_str(written).unwrap();
            assert_eq!(read.to_value().to_string(), written);
        }
        let read: Progress = serde_json::from_str(checkpoint).unwrap();
        assert_eq!(
            read,
            Progress::Checkpoint {
                checkpoint: Checkpointed { step: 20 }
            }
        );
    }
}
