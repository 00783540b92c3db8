//! A quantum job's circuits and the Context settings they run with: `shots` (1024), `seed`,
//! `precision` (`single`, `double`) and `observables` (Pauli sums).

use chimera_circuit::memory::Precision;
use chimera_circuit::pauli::PauliSum;
use chimera_maml::{BlockKind, CodeBlock};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{BlockRun, CheckedBlock, JobError, Limits};

/// An OpenQASM 2 program that lowers to a circuit, and its width. The program is carried, not
/// its operations: a few lines can expand to millions of them, memory the head holds when it
/// runs the circuit, not the front door, the journal or the pipe to the head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckedCircuit {
    pub program: String,
    pub num_qubits: usize,
}

pub(crate) fn single_precision_gib(qubits: usize) -> f64 {
    Precision::Single.state_bytes(qubits) as f64 / f64::from(1u32 << 30)
}

/// Each OpenQASM 2 block, lowered without keeping its operations. Refuses one that does not
/// lower, or that has more than `max_qubits` qubits.
pub(crate) fn check(
    blocks: &[CodeBlock],
    max_qubits: usize,
) -> Result<Vec<CheckedBlock>, JobError> {
    let numbered = blocks.iter().enumerate();
    let circuits = numbered.filter(|(_, b)| b.kind == BlockKind::OpenQasm2);
    circuits
        .map(|(index, block)| {
            let circuit =
                chimera_circuit::qasm::check(&block.code).map_err(|e| bad_circuit(block, e))?;
            if circuit.num_qubits > max_qubits {
                return Err(JobError::TooManyQubits {
                    block_line: block.line,
                    qubits: circuit.num_qubits,
                    max_qubits,
                });
            }
            let run = BlockRun::Circuit(CheckedCircuit {
                program: block.code.clone(),
                num_qubits: circuit.num_qubits,
            });
            Ok(CheckedBlock {
                number: index + 1,
                line: block.line,
                run,
            })
        })
        .collect()
}

/// Refuses a `qasm3` block (a hybrid model's circuit layer) that is not a parameterised
/// circuit, whether or not a model names it: every error a client can cause is found here.
pub(crate) fn check_layers(blocks: &[CodeBlock]) -> Result<(), JobError> {
    let layers = blocks.iter().filter(|b| b.kind == BlockKind::OpenQasm3);
    for block in layers {
        chimera_circuit::qasm::parse_parameterised(&block.code)
            .map_err(|e| bad_circuit(block, e))?;
    }
    Ok(())
}

fn bad_circuit(block: &CodeBlock, e: chimera_circuit::qasm::QasmError) -> JobError {
    JobError::BadCircuit {
        block_line: block.line,
        line: e.line,
        column: e.column,
        message: e.message,
    }
}

/// How a job's circuits run, from its Context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CircuitSettings {
    pub shots: u64,
    /// The Context's `seed`, else one derived from the job's id: the same on every attempt, so
    /// that a job run again after its head died gives the same counts.
    pub seed: u64,
    pub precision: Precision,
    pub observables: Vec<PauliSum>,
}

impl CircuitSettings {
    pub const DEFAULT_SHOTS: u64 = 1024;

    /// Reads the settings a Context gives, with their defaults, for the job `job_id`.
    pub fn from_context(context: &Map<String, Value>, job_id: &str) -> Result<Self, JobError> {
        let whole = |key: &'static str| {
            context
                .get(key)
                .map(|v| {
                    v.as_u64().ok_or_else(|| JobError::BadContext {
                        key,
                        problem: format!("must be a whole number, not {v}"),
                    })
                })
                .transpose()
        };
        let precision = match context.get("precision") {
            None => Precision::Single,
            Some(v) if v == "single" => Precision::Single,
            Some(v) if v == "double" => Precision::Double,
            Some(v) => {
                return Err(JobError::BadContext {
                    key: "precision",
                    problem: format!("is `single` or `double`, not {v}"),
                });
            }
        };
        Ok(Self {
            shots: whole("shots")?.unwrap_or(Self::DEFAULT_SHOTS),
            seed: whole("seed")?.unwrap_or_else(|| seed_of(job_id)),
            precision,
            observables: observables(context.get("observables"))?,
        })
    }

    /// Refuses shots past the limit, and an observable on a qubit one of `blocks`' circuits
    /// lacks.
    pub(crate) fn within(&self, limits: &Limits, blocks: &[CheckedBlock]) -> Result<(), JobError> {
        if self.shots > limits.max_shots {
            return Err(JobError::OverLimit {
                what: "Context `shots`".into(),
                value: self.shots.into(),
                limit: limits.max_shots.into(),
                flag: "--max-shots",
            });
        }
        for observable in &self.observables {
            let Some(qubit) = observable.max_qubit() else {
                continue;
            };
            let narrow = blocks.iter().find_map(|block| match &block.run {
                BlockRun::Circuit(c) if qubit >= c.num_qubits => Some((block.line, c.num_qubits)),
                _ => None,
            });
            if let Some((line, num_qubits)) = narrow {
                return Err(JobError::BadContext {
                    key: "observables",
                    problem: format!(
                        "\"{}\" names qubit {qubit}, but the circuit at line {line} has \
                         {num_qubits} qubits (0 to {})",
                        observable.text,
                        num_qubits.saturating_sub(1)
                    ),
                });
            }
        }
        Ok(())
    }
}

/// A seed for a job that names none: the same job gets the same one on every attempt.
fn seed_of(job_id: &str) -> u64 {
    let digest = chimera_maml::digest(job_id.as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

fn observables(given: Option<&Value>) -> Result<Vec<PauliSum>, JobError> {
    let problem = |problem: String| JobError::BadContext {
        key: "observables",
        problem,
    };
    let Some(given) = given else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = given else {
        return Err(problem(
            "must be a list of Pauli sums such as [\"Z0 Z1\", \"0.5*X2\"]".into(),
        ));
    };
    items
        .iter()
        .map(|item| {
            let text = item
                .as_str()
                .ok_or_else(|| problem(format!("{item} is not a Pauli sum such as \"Z0 Z1\"")))?;
            PauliSum::parse(text).map_err(|e| problem(e.to_string()))
        })
        .collect()
}
