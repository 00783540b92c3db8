//! A quantum job's circuits and the Context settings they run with: `shots` (1024), `seed`,
//! `precision` (`single`, `double`) and `observables` (Pauli sums).

use chimera_maml::{BlockKind, CodeBlock};
use chimera_quantum::backend::Precision;
use chimera_quantum::pauli::PauliSum;
use serde_json::{Map, Value};

use crate::{JobError, Limits};

/// An OpenQASM 2 block that parses, and its width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedCircuit {
    /// The line of the block's opening fence in the document.
    pub line: usize,
    pub num_qubits: usize,
}

pub(crate) fn single_precision_gib(qubits: usize) -> f64 {
    Precision::Single.state_bytes(qubits) as f64 / f64::from(1u32 << 30)
}

/// Parses each OpenQASM 2 block, without keeping its operations: a few lines can expand to
/// millions of them, memory the head will hold when it runs the circuit, not the front door.
/// Refuses one that does not parse, or that has more than `max_qubits` qubits.
pub(crate) fn check(
    blocks: &[CodeBlock],
    max_qubits: usize,
) -> Result<Vec<CheckedCircuit>, JobError> {
    let circuits = blocks.iter().filter(|b| b.kind == BlockKind::OpenQasm2);
    circuits
        .map(|block| {
            let circuit =
                chimera_quantum::qasm::check(&block.code).map_err(|e| JobError::BadCircuit {
                    block_line: block.line,
                    line: e.line,
                    column: e.column,
                    message: e.message,
                })?;
            if circuit.num_qubits > max_qubits {
                return Err(JobError::TooManyQubits {
                    block_line: block.line,
                    qubits: circuit.num_qubits,
                    max_qubits,
                });
            }
            Ok(CheckedCircuit {
                line: block.line,
                num_qubits: circuit.num_qubits,
            })
        })
        .collect()
}

/// How a job's circuits run, from its Context.
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitSettings {
    pub shots: u64,
    /// `None`: the head derives one from the job's id, the same on every attempt.
    pub seed: Option<u64>,
    pub precision: Precision,
    pub observables: Vec<PauliSum>,
}

impl CircuitSettings {
    pub const DEFAULT_SHOTS: u64 = 1024;

    /// Reads the settings a Context gives, with their defaults.
    pub fn from_context(context: &Map<String, Value>) -> Result<Self, JobError> {
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
            seed: whole("seed")?,
            precision,
            observables: observables(context.get("observables"))?,
        })
    }

    /// Refuses shots past the limit, and an observable on a qubit one of `circuits` lacks.
    pub(crate) fn within(
        &self,
        limits: &Limits,
        circuits: &[CheckedCircuit],
    ) -> Result<(), JobError> {
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
            if let Some(narrow) = circuits.iter().find(|c| qubit >= c.num_qubits) {
                return Err(JobError::BadContext {
                    key: "observables",
                    problem: format!(
                        "\"{}\" names qubit {qubit}, but the circuit at line {} has {} qubits \
                         (0 to {})",
                        observable.text,
                        narrow.line,
                        narrow.num_qubits,
                        narrow.num_qubits.saturating_sub(1)
                    ),
                });
            }
        }
        Ok(())
    }
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
