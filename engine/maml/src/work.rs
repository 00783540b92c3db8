//! What a job's code blocks ask the engine to run, named as the trust store's `allow` lists name
//! it. A key is allowed kinds of work, and a job is checked against the work its blocks do, not
//! against the `type` its front matter claims: the blocks are what the engine runs.

use std::collections::BTreeSet;

use crate::document::{BlockKind, Job};

/// One kind of work a code block asks for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Work {
    /// OpenQASM 2 circuits: `qasm`, `qasm2` and `openqasm` blocks.
    QuantumCircuit,
    /// `chimera-train` blocks.
    Training,
    /// `chimera-infer` blocks.
    Inference,
    /// `qasm3` blocks: the circuit layers of a `hybrid_workflow`'s models.
    HybridWorkflow,
}

/// The wildcard in a trust store's `allow`: every kind of work.
pub const ANY_TYPE: &str = "*";

/// The permission that lets a key read, follow and cancel every client's jobs (an operator's).
pub const ADMIN: &str = "admin";

impl Work {
    pub const ALL: [Work; 4] = [
        Self::QuantumCircuit,
        Self::Training,
        Self::Inference,
        Self::HybridWorkflow,
    ];

    /// The name a trust store's `allow` and a MAML `type` give it.
    pub fn name(self) -> &'static str {
        match self {
            Self::QuantumCircuit => "quantum_circuit",
            Self::Training => "training",
            Self::Inference => "inference",
            Self::HybridWorkflow => "hybrid_workflow",
        }
    }

    /// The work a block of this kind asks for; none for blocks the engine does not run.
    pub fn of(kind: BlockKind) -> Option<Self> {
        match kind {
            BlockKind::OpenQasm2 => Some(Self::QuantumCircuit),
            BlockKind::OpenQasm3 => Some(Self::HybridWorkflow),
            BlockKind::Train => Some(Self::Training),
            BlockKind::Infer => Some(Self::Inference),
            BlockKind::Python | BlockKind::Other => None,
        }
    }

    fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.name() == name)
    }
}

/// Every kind of work `job`'s blocks ask for.
pub fn work_of(job: &Job) -> BTreeSet<Work> {
    job.code_blocks
        .iter()
        .filter_map(|b| Work::of(b.kind))
        .collect()
}

/// Work names joined by `+`, as the audit log and the metrics label a job: `training+inference`.
pub fn label(work: &BTreeSet<Work>) -> String {
    let names: Vec<&str> = work.iter().map(|w| w.name()).collect();
    names.join("+")
}

/// Why a job's `type` disagrees with what its blocks run, if it does. The four types that name
/// work hold only that work (a `hybrid_workflow` its `qasm3` layers and the model blocks that use
/// them); `workflow` and any other type route by their blocks alone, but only a `hybrid_workflow`
/// runs `qasm3` blocks.
pub fn type_mismatch(job_type: &str, work: &BTreeSet<Work>) -> Option<String> {
    let layers = work.contains(&Work::HybridWorkflow);
    let models = work.contains(&Work::Training) || work.contains(&Work::Inference);
    match Work::named(job_type) {
        // OpenQASM 2 circuits with models are refused as the engine cannot chain them yet.
        Some(Work::HybridWorkflow) => {
            let circuits = layers || work.contains(&Work::QuantumCircuit);
            (!(circuits && models)).then(|| {
                "a hybrid_workflow holds circuits and the models that use them: qasm3 layers and \
                 chimera-train (or chimera-infer) blocks"
                    .to_owned()
            })
        }
        Some(named) if work.iter().any(|w| *w != named) => Some(format!(
            "a {} job holds only {} blocks",
            named.name(),
            blocks_of(named)
        )),
        _ if layers && Work::named(job_type).is_none() => Some(
            "qasm3 blocks run only as the circuit layers of a hybrid_workflow's models; write a \
             circuit to run on its own in OpenQASM 2 (```qasm)"
                .to_owned(),
        ),
        _ => None,
    }
}

/// The blocks that do `work`, in words.
fn blocks_of(work: Work) -> &'static str {
    match work {
        Work::QuantumCircuit => "OpenQASM 2 (```qasm)",
        Work::Training => "chimera-train",
        Work::Inference => "chimera-infer",
        Work::HybridWorkflow => "qasm3",
    }
}

/// Whether `name` is something a trust store's `allow` may list: a kind of work, `*` (every
/// kind) or [`ADMIN`].
pub fn allowable(name: &str) -> bool {
    name == ANY_TYPE || name == ADMIN || Work::named(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(work: &[Work]) -> BTreeSet<Work> {
        work.iter().copied().collect()
    }

    #[test]
    fn a_type_that_names_work_holds_only_that_work() {
        use Work::*;
        assert_eq!(
            type_mismatch("quantum_circuit", &set(&[QuantumCircuit])),
            None
        );
        assert_eq!(type_mismatch("training", &set(&[Training])), None);
        let said = type_mismatch("quantum_circuit", &set(&[Training])).unwrap();
        assert!(said.contains("only OpenQASM 2"), "{said}");
        assert!(type_mismatch("inference", &set(&[Inference, Training])).is_some());
        assert_eq!(
            type_mismatch("hybrid_workflow", &set(&[HybridWorkflow, Training])),
            None
        );
        assert!(type_mismatch("hybrid_workflow", &set(&[HybridWorkflow])).is_some());
        assert!(type_mismatch("hybrid_workflow", &set(&[Training])).is_some());
        // Left to the engine, which says it does not chain OpenQASM 2 circuits with models.
        assert_eq!(
            type_mismatch("hybrid_workflow", &set(&[QuantumCircuit, Training])),
            None
        );
    }

    #[test]
    fn other_types_route_by_their_blocks_but_run_no_qasm3_alone() {
        use Work::*;
        assert_eq!(type_mismatch("workflow", &set(&[QuantumCircuit])), None);
        assert_eq!(
            type_mismatch("anything", &set(&[Training, Inference])),
            None
        );
        let said = type_mismatch("workflow", &set(&[HybridWorkflow])).unwrap();
        assert!(said.contains("OpenQASM 2"), "{said}");
    }

    #[test]
    fn allow_lists_name_work_every_kind_or_admin() {
        for name in [
            "quantum_circuit",
            "training",
            "inference",
            "hybrid_workflow",
            "*",
            "admin",
        ] {
            assert!(allowable(name), "{name}");
        }
        for name in ["workflow", "Training", "", "quantum"] {
            assert!(!allowable(name), "{name}");
        }
    }
}
