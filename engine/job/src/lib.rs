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
mod reports;

use std::collections::BTreeSet;

use chimera_ai_spec::{InferSpec, TrainSpec};
use chimera_maml::{Job, Work, work_of};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use circuits::{CheckedCircuit, CircuitSettings};
pub use reports::{
    BlockResult, Checkpointed, CircuitResult, Embeddings, Expectation, InferenceResult, JobResult,
    Progress, TrainingResult,
};

/// The role of head that runs a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

impl std::str::FromStr for Role {
    type Err = String;

    /// The role a name gives (`quantum`, `ai`), as journal records and the head's flag say it.
    fn from_str(name: &str) -> Result<Self, String> {
        [Self::Quantum, Self::Ai]
            .into_iter()
            .find(|role| role.name() == name)
            .ok_or_else(|| format!("`{name}` is no role of head: `quantum` or `ai`"))
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

/// Who vouches for a job: the digest of its signed bytes and the key that signed them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    /// SHA3-512 of the signed bytes, hex: what a receipt names.
    pub digest: String,
    /// The trust store name of the key that signed it: the job's owner.
    pub signer: String,
}

/// A job as the door checked it: everything a head needs to run it, read once. The journal
/// keeps it beside the document and a head is sent it; nothing after the door reads the MAML
/// document again but the receipt, which is that document with History lines added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckedJob {
    /// The MAML `id`.
    pub id: String,
    pub signed: Signed,
    pub role: Role,
    /// What its blocks run.
    pub work: BTreeSet<Work>,
    /// MAML.md: `requires: resources` naming `cuda` means run on a GPU or fail, never
    /// silently on the CPU.
    pub requires_cuda: bool,
    /// How its circuits run (a quantum job's).
    pub settings: Option<CircuitSettings>,
    /// The blocks a head runs, in the document's order.
    pub blocks: Vec<CheckedBlock>,
    /// The Output_Schema its result must match, if it has one.
    pub output_schema: Option<Value>,
}

/// One code block a head runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckedBlock {
    /// Its place among the document's code blocks, from 1, as a receipt's History numbers it.
    pub number: usize,
    /// The line of its opening fence in the document.
    pub line: usize,
    pub run: BlockRun,
}

/// What a block runs, read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockRun {
    /// An OpenQASM 2 circuit.
    Circuit(CheckedCircuit),
    /// A `chimera-train` block's spec, a hybrid model's circuit resolved into it.
    Train(#[serde(with = "spec_with_source")] TrainSpec),
    /// A `chimera-infer` block's spec.
    Infer(InferSpec),
}

/// A training spec carried with the YAML it was read from, which checkpoints and stored models
/// keep: the spec's own serde form leaves that out, as a client's spec may not set it.
mod spec_with_source {
    use chimera_ai_spec::TrainSpec;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    struct Carried<'a> {
        spec: &'a TrainSpec,
        source: &'a str,
    }

    #[derive(Deserialize)]
    struct Read {
        spec: TrainSpec,
        source: String,
    }

    pub fn serialize<S: Serializer>(spec: &TrainSpec, to: S) -> Result<S::Ok, S::Error> {
        let source = &spec.source;
        Carried { spec, source }.serialize(to)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<TrainSpec, D::Error> {
        let Read { mut spec, source } = Read::deserialize(from)?;
        spec.source = source;
        Ok(spec)
    }
}

impl CheckedJob {
    /// Its circuits, in order.
    pub fn circuits(&self) -> impl Iterator<Item = &CheckedCircuit> {
        self.blocks.iter().filter_map(|block| match &block.run {
            BlockRun::Circuit(circuit) => Some(circuit),
            _ => None,
        })
    }

    /// Its training specs, in order.
    pub fn trainings(&self) -> impl Iterator<Item = &TrainSpec> {
        self.blocks.iter().filter_map(|block| match &block.run {
            BlockRun::Train(spec) => Some(spec),
            _ => None,
        })
    }
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
/// are what they must be, its specs read and stay within bounds. `signed` says who vouches for
/// it.
pub fn check(job: &Job, signed: Signed, limits: &Limits) -> Result<CheckedJob, JobError> {
    let work = work_of(job);
    let role = role_of(&work)?;
    let mut blocks = circuits::check(&job.code_blocks, limits.max_qubits)?;
    circuits::check_layers(&job.code_blocks)?;
    let settings = match role {
        Role::Quantum => {
            let settings = CircuitSettings::from_context(&job.context, &job.id)?;
            settings.within(limits, &blocks)?;
            Some(settings)
        }
        Role::Ai => None,
    };
    blocks.extend(models::check(job, limits)?);
    blocks.sort_by_key(|block| block.number);
    Ok(CheckedJob {
        id: job.id.clone(),
        signed,
        role,
        work,
        requires_cuda: job.requires_cuda(),
        settings,
        blocks,
        output_schema: job.output_schema.clone(),
    })
}

/// [`check`] for a document admission passed: signed, by the key it names.
pub fn check_admitted(
    admitted: &chimera_maml::Admitted,
    limits: &Limits,
) -> Result<CheckedJob, JobError> {
    let signature = admitted.document.signature.as_ref();
    let signature = signature.expect("admission passes only signed documents");
    let digest = hex::encode(signature.sha3_512);
    let signed = Signed {
        digest,
        signer: admitted.key_name.clone(),
    };
    check(&admitted.document.job, signed, limits)
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

    /// [`check`] within [`LIMITS`], vouched for by a test key.
    fn checked(job: &Job) -> Result<CheckedJob, JobError> {
        let signed = Signed {
            digest: "d1".into(),
            signer: "lab".into(),
        };
        check(job, signed, &LIMITS)
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
        let circuit = checked(&job("quantum_circuit", "shots: 10", &[("qasm", BELL)]));
        let circuit = circuit.unwrap();
        assert_eq!(circuit.role, Role::Quantum);
        assert_eq!(circuit.circuits().next().unwrap().num_qubits, 2);
        assert_eq!(circuit.settings.unwrap().shots, 10);
        let spec = "dataset: digits\nmodel:\n  kind: mlp\n  hidden: [8]\nepochs: 3";
        let training = checked(&job("training", "", &[("chimera-train", spec)])).unwrap();
        assert_eq!(training.role, Role::Ai);
        assert_eq!(training.trainings().next().unwrap().epochs, 3);
        let both = job("workflow", "", &[("qasm", BELL), ("chimera-train", spec)]);
        assert_eq!(checked(&both).unwrap_err().reason(), "HYBRID_NOT_SUPPORTED");
    }

    /// Issue 34: `shots: 9223372036854775807` panicked a head's executor; 4294967297 aborted it.
    #[test]
    fn shots_and_epochs_past_the_limits_are_refused_naming_the_limit_and_its_flag() {
        for shots in ["2001", "4294967297", "9223372036854775807"] {
            let refused = checked(&job(
                "quantum_circuit",
                &format!("shots: {shots}"),
                &[("qasm", BELL)],
            ))
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
        let refused = checked(&job("training", "", &[("chimera-train", spec)]));
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
        let refused = checked(&job("quantum_circuit", context, &[("qasm", BELL)]));
        let refused = refused.unwrap_err();
        assert_eq!(refused.reason(), "BAD_CONTEXT");
        let said = refused.to_string();
        assert!(
            said.contains("\"X5\" names qubit 5") && said.contains("2 qubits"),
            "{said}"
        );
        let garbled = checked(&job(
            "quantum_circuit",
            "observables: [\"Q9\"]",
            &[("qasm", BELL)],
        ));
        assert_eq!(garbled.unwrap_err().reason(), "BAD_CONTEXT");
    }

    /// What a head is sent and the journal keeps: the job reads back as it was checked, with
    /// its seed fixed at the door (the same on every attempt) and its blocks numbered as the
    /// document numbers them.
    #[test]
    fn a_checked_job_reads_back_from_its_json_as_it_was() {
        let context = "shots: 10\nprecision: double\nobservables: [\"Z0 Z1\"]";
        let circuit = job(
            "quantum_circuit",
            context,
            &[("text", "a note"), ("qasm", BELL)],
        );
        let spec = "dataset: digits\nmodel:\n  kind: mlp\n  hidden: [8]\nepochs: 3";
        let infer = "model: m\ninputs: [[1.0]]";
        let models = job(
            "workflow",
            "",
            &[("chimera-train", spec), ("chimera-infer", infer)],
        );
        for job in [circuit, models] {
            let checked = checked(&job).unwrap();
            let json = serde_json::to_string(&checked).unwrap();
            let read: CheckedJob = serde_json::from_str(&json).unwrap();
            assert_eq!(read, checked, "{json}");
        }
        let circuit = checked(&job(
            "quantum_circuit",
            "",
            &[("text", "a note"), ("qasm", BELL)],
        ));
        let circuit = circuit.unwrap();
        assert_eq!(circuit.blocks[0].number, 2);
        let seed = circuit.settings.unwrap().seed;
        let again = checked(&job("quantum_circuit", "", &[("qasm", BELL)])).unwrap();
        assert_eq!(again.settings.unwrap().seed, seed);
    }

    /// A hybrid model's circuit layer that does not parse was found only when a head trained
    /// the model; it is refused at the door, at its line.
    #[test]
    fn a_qasm3_layer_that_does_not_parse_is_refused_at_the_door_with_its_line() {
        let layer = "OPENQASM 3.0;\nqubit[2] q;\ninput angle x;\nry(x) q[0];\nfrobnicate q[1];";
        let refused = checked(&job("hybrid_workflow", "", &[("qasm3", layer)])).unwrap_err();
        assert_eq!(refused.reason(), "BAD_CIRCUIT");
        let said = refused.to_string();
        assert!(
            said.contains("circuit at line 12") && said.contains("line 5 column 1"),
            "{said}"
        );
    }
}
