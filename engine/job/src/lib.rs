//! A job checked at the door, before it takes a place in a queue: the role of head it needs, its
//! circuits and specs read, and every number a client sends within the engine's [`Limits`]
//! (DESIGN.md: nothing a client sends can crash the engine, and every error it can cause is
//! refused with a stable reason). A number past a limit is refused here with the limit and the
//! flag that sets it, not found out when a head runs out of memory or panics on it.
//!
//! The signature, the trust store and the work a key may run are `chimera_maml::admit`'s; this
//! crate checks what an admitted job holds.

mod circuits;
mod models;

use std::collections::BTreeSet;

use chimera_ai_spec::TrainSpec;
use chimera_maml::{Job, Work, work_of};

pub use circuits::{CheckedCircuit, CircuitSettings};

/// The role of head that runs a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Quantum,
    Ai,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Self::Quantum => "quantum",
            Self::Ai => "ai",
        }
    }
}

/// The largest numbers a job may ask for. `chimera serve` sets them (`--max-qubits`,
/// `--max-shots`, `--max-epochs`); models have fixed bounds of their own
/// (`chimera_ai_spec::MAX_PARAMETERS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_qubits: usize,
    pub max_shots: u64,
    pub max_epochs: usize,
}

impl Limits {
    /// A million shots: 8 MB of random draws for a sampled circuit, a million trajectories for
    /// one measured mid-circuit.
    pub const DEFAULT_MAX_SHOTS: u64 = 1_000_000;
    pub const DEFAULT_MAX_EPOCHS: usize = 10_000;
}

/// A job as the door checked it.
#[derive(Debug, Clone)]
pub struct CheckedJob {
    pub role: Role,
    /// What its blocks run.
    pub work: BTreeSet<Work>,
    /// Its OpenQASM 2 circuits, and the settings they run with (a quantum job's).
    pub circuits: Vec<CheckedCircuit>,
    pub settings: Option<CircuitSettings>,
    /// Its `chimera-train` blocks' specs.
    pub trainings: Vec<TrainSpec>,
}

/// Why a job is refused at the door. [`JobError::reason`] is the stable code clients match on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    #[error(
        "the job holds both circuit and model blocks; this engine runs them together only as a \
         `hybrid_workflow` whose circuits are `qasm3` layers of a `kind: hybrid` model; \
         otherwise submit the circuit and the model as separate jobs"
    )]
    HybridNotSupported,
    #[error(
        "the circuit at line {block_line} of the document, line {line} column {column} of the \
         circuit (line {} of the document): {message}",
        block_line + line
    )]
    BadCircuit {
        block_line: usize,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "the circuit at line {block_line} has {qubits} qubits: its state needs {:.1} GiB in \
         single precision, and the largest this engine's devices hold is {max_qubits} qubits \
         ({:.1} GiB)",
        circuits::single_precision_gib(*qubits),
        circuits::single_precision_gib(*max_qubits)
    )]
    TooManyQubits {
        block_line: usize,
        qubits: usize,
        max_qubits: usize,
    },
    #[error("the {language} block at line {block_line}{}: {message}", spec_place(*block_line, *spec_line))]
    BadSpec {
        language: String,
        block_line: usize,
        spec_line: Option<usize>,
        message: String,
    },
    #[error("Context `{key}`: {problem}")]
    BadContext { key: &'static str, problem: String },
    #[error(
        "{what} is {value}, over this engine's limit of {limit} (`chimera serve {flag}` sets it)"
    )]
    OverLimit {
        what: String,
        value: u128,
        limit: u128,
        flag: &'static str,
    },
}

fn spec_place(block_line: usize, spec_line: Option<usize>) -> String {
    spec_line
        .map(|line| {
            format!(
                " (its line {line} is line {} of the document)",
                block_line + line
            )
        })
        .unwrap_or_default()
}

impl JobError {
    /// A stable, machine-readable code for the refusal.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::HybridNotSupported => "HYBRID_NOT_SUPPORTED",
            Self::BadCircuit { .. } => "BAD_CIRCUIT",
            Self::TooManyQubits { .. } => "TOO_MANY_QUBITS",
            Self::BadSpec { .. } => "BAD_SPEC",
            Self::BadContext { .. } => "BAD_CONTEXT",
            Self::OverLimit { .. } => "OVER_LIMIT",
        }
    }
}

/// The role of head that runs work of these kinds: circuits on a quantum head; models, and a
/// hybrid_workflow's circuit layers with them, on an AI head.
pub fn role_of(work: &BTreeSet<Work>) -> Result<Role, JobError> {
    let circuits = work.contains(&Work::QuantumCircuit);
    match (circuits, work.iter().any(|w| *w != Work::QuantumCircuit)) {
        (true, true) => Err(JobError::HybridNotSupported),
        (true, false) => Ok(Role::Quantum),
        (false, _) => Ok(Role::Ai),
    }
}

/// Checks an admitted job against `limits`: its circuits parse and fit, its Context settings
/// are what they must be, its specs read and stay within bounds.
pub fn check(job: &Job, limits: &Limits) -> Result<CheckedJob, JobError> {
    let work = work_of(job);
    let role = role_of(&work)?;
    let (circuits, settings) = match role {
        Role::Quantum => {
            let circuits = circuits::check(&job.code_blocks, limits.max_qubits)?;
            let settings = CircuitSettings::from_context(&job.context)?;
            settings.within(limits, &circuits)?;
            (circuits, Some(settings))
        }
        Role::Ai => (Vec::new(), None),
    };
    let trainings = models::check(job, limits)?;
    Ok(CheckedJob {
        role,
        work,
        circuits,
        settings,
        trainings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(job_type: &str, context: &str, blocks: &[(&str, &str)]) -> Job {
        let mut text = format!(
            "---\nmaml_version: \"2.0.0\"\nid: \"urn:uuid:t\"\ntype: \"{job_type}\"\n\
             origin: \"agent://t\"\ncreated_at: 2026-11-20T10:00:00Z\n---\n## Context\n{context}\n\n\
             ## Code_Blocks\n"
        );
        for (language, code) in blocks {
            text += &format!("```{language}\n{code}\n```\n");
        }
        chimera_maml::parse(text.as_bytes(), chimera_maml::DEFAULT_MAX_BYTES)
            .unwrap()
            .job
    }

    pub(crate) const BELL: &str =
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\nh q[0];\ncx q[0],q[1];";
    const LIMITS: Limits = Limits {
        max_qubits: 30,
        max_shots: 2000,
        max_epochs: 50,
    };

    #[test]
    fn circuits_run_on_a_quantum_head_and_models_on_an_ai_head() {
        let circuit = check(
            &job("quantum_circuit", "shots: 10", &[("qasm", BELL)]),
            &LIMITS,
        );
        let circuit = circuit.unwrap();
        assert_eq!(circuit.role, Role::Quantum);
        assert_eq!(circuit.circuits[0].num_qubits, 2);
        assert_eq!(circuit.settings.unwrap().shots, 10);
        let spec = "dataset: digits\nmodel:\n  kind: mlp\n  hidden: [8]\nepochs: 3";
        let training = check(&job("training", "", &[("chimera-train", spec)]), &LIMITS).unwrap();
        assert_eq!(training.role, Role::Ai);
        assert_eq!(training.trainings[0].epochs, 3);
        let both = job("workflow", "", &[("qasm", BELL), ("chimera-train", spec)]);
        assert_eq!(
            check(&both, &LIMITS).unwrap_err().reason(),
            "HYBRID_NOT_SUPPORTED"
        );
    }

    /// Issue 34: `shots: 9223372036854775807` panicked a head's executor; 4294967297 aborted it.
    #[test]
    fn shots_and_epochs_past_the_limits_are_refused_naming_the_limit_and_its_flag() {
        for shots in ["2001", "4294967297", "9223372036854775807"] {
            let refused = check(
                &job(
                    "quantum_circuit",
                    &format!("shots: {shots}"),
                    &[("qasm", BELL)],
                ),
                &LIMITS,
            )
            .unwrap_err();
            assert_eq!(refused.reason(), "OVER_LIMIT");
            let said = refused.to_string();
            assert!(
                said.contains(&format!("Context `shots` is {shots}"))
                    && said.contains("limit of 2000")
                    && said.contains("--max-shots"),
                "{said}"
            );
        }
        let spec = "dataset: digits\nmodel:\n  kind: mlp\n  hidden: [8]\nepochs: 51";
        let refused = check(&job("training", "", &[("chimera-train", spec)]), &LIMITS);
        let said = refused.unwrap_err().to_string();
        assert!(
            said.contains("`epochs` of the chimera-train block at line 12 is 51")
                && said.contains("--max-epochs"),
            "{said}"
        );
    }

    #[test]
    fn an_observable_on_a_qubit_the_circuit_lacks_is_refused_at_the_door() {
        let context = "observables: [\"Z0 Z1\", \"X5\"]";
        let refused = check(&job("quantum_circuit", context, &[("qasm", BELL)]), &LIMITS);
        let refused = refused.unwrap_err();
        assert_eq!(refused.reason(), "BAD_CONTEXT");
        let said = refused.to_string();
        assert!(
            said.contains("\"X5\" names qubit 5") && said.contains("2 qubits"),
            "{said}"
        );
        let garbled = check(
            &job(
                "quantum_circuit",
                "observables: [\"Q9\"]",
                &[("qasm", BELL)],
            ),
            &LIMITS,
        );
        assert_eq!(garbled.unwrap_err().reason(), "BAD_CONTEXT");
    }
}
