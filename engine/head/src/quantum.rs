//! A quantum head: runs a job's OpenQASM 2 circuits on the simulator, with the settings the door
//! read from its Context.

use std::sync::atomic::AtomicBool;

use chimera_job::{
    BlockResult, BlockRun, CheckedBlock, CheckedJob, CircuitResult, CircuitSettings, Expectation,
    Progress,
};
use chimera_quantum::backend::cpu::CpuBackend;
use chimera_quantum::backend::cuda::CudaBackend;
use chimera_quantum::backend::{Backend, BackendError, Work};
use chimera_quantum::run::{RunOptions, run as run_circuit};

use crate::blocks::{BlockFailure, BlockRunner, kind_of};

pub(crate) struct QuantumHead {
    pub backend: Box<dyn Backend>,
}

impl QuantumHead {
    /// On the GPU when one answers, else on every core of the CPU.
    pub fn on_the_fastest_backend() -> Result<Self, BackendError> {
        let backend: Box<dyn Backend> = match CudaBackend::new() {
            Ok(gpu) => Box::new(gpu),
            Err(_) => Box::new(CpuBackend::new(None)?),
        };
        Ok(Self { backend })
    }
}

impl BlockRunner for QuantumHead {
    fn backend(&self) -> String {
        self.backend.describe()
    }

    fn on_gpu(&self) -> bool {
        self.backend.is_gpu()
    }

    fn work(&self) -> Work {
        self.backend.work()
    }

    fn run_block(
        &mut self,
        job: &CheckedJob,
        block: &CheckedBlock,
        _: &mut dyn FnMut(Progress),
        _: &AtomicBool,
    ) -> Result<Option<BlockResult>, BlockFailure> {
        let (BlockRun::Circuit(checked), Some(settings)) = (&block.run, &job.settings) else {
            let block = kind_of(&block.run);
            return Err(BlockFailure::NotThisRole {
                role: "quantum",
                block,
            });
        };
        let circuit = chimera_circuit::qasm::parse(&checked.program)?;
        let &CircuitSettings {
            shots,
            seed,
            precision,
            ref observables,
        } = settings;
        let options = RunOptions {
            // Within `--max-shots`, checked at the door.
            shots: shots as usize,
            seed,
            precision,
            observables: observables.clone(),
            keep_state: false,
        };
        let out = run_circuit(&circuit, self.backend.as_ref(), &options)?;
        let expectation_values = options.observables.iter().zip(&out.expectations);
        let expectation_values = expectation_values
            .map(|(observable, &value)| Expectation {
                observable: observable.text.clone(),
                value,
            })
            .collect();
        Ok(Some(BlockResult::Circuit(CircuitResult {
            num_qubits: circuit.num_qubits,
            gates: circuit.gate_count(),
            shots,
            seed,
            precision,
            backend: self.backend.describe(),
            counts: out.counts,
            expectation_values,
            simulate_ms: out.timings.simulate.as_secs_f64() * 1e3,
            gate_passes: out.work.gate_passes,
        })))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::atomic::AtomicBool;

    use chimera_circuit::memory::Precision;
    use chimera_circuit::pauli::PauliSum;
    use chimera_job::{CheckedCircuit, Role, Signed};
    use chimera_supervisor::Outcome;

    use serde_json::Value;

    use super::*;
    use crate::blocks::Blocks;
    use crate::worker::Executor;

    const BELL: &str = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\ncreg c[2];\n\
                        h q[0];\ncx q[0],q[1];\nmeasure q -> c;";

    /// A job as the door hands one on, made here from its parts: no MAML document exists.
    fn bell_job(requires_cuda: bool) -> CheckedJob {
        let circuit = CheckedCircuit {
            program: BELL.into(),
            num_qubits: 2,
        };
        CheckedJob {
            id: "urn:uuid:bell".into(),
            signed: Signed {
                digest: "d".into(),
                signer: "lab".into(),
            },
            role: Role::Quantum,
            work: BTreeSet::from([chimera_maml::Work::QuantumCircuit]),
            requires_cuda,
            settings: Some(CircuitSettings {
                shots: 100,
                seed: 7,
                precision: Precision::Single,
                observables: vec![PauliSum::parse("Z0 Z1").unwrap()],
            }),
            blocks: vec![CheckedBlock {
                number: 1,
                line: 12,
                run: BlockRun::Circuit(circuit),
            }],
            output_schema: None,
        }
    }

    fn run(job: &CheckedJob) -> Outcome {
        let runner = QuantumHead {
            backend: Box::new(CpuBackend::new(Some(1)).unwrap()),
        };
        let mut blocks = Blocks {
            runner,
            data_dir: std::env::temp_dir(),
        };
        blocks
            .run(job, &mut |_| {}, &AtomicBool::new(false))
            .outcome
    }

    /// Issue 35: a head runs what the door checked and never reads the document again; its
    /// executor takes no document at all.
    #[test]
    fn a_quantum_head_runs_a_checked_job_that_no_document_came_with() {
        let Outcome::Succeeded(result) = run(&bell_job(false)) else {
            panic!("the Bell job did not succeed");
        };
        let result: Value = serde_json::from_str(&result).unwrap();
        let counts = result["counts"].as_object().unwrap();
        assert!(counts.keys().all(|k| k == "00" || k == "11"), "{result}");
        let shots: u64 = counts.values().map(|n| n.as_u64().unwrap()).sum();
        assert_eq!((shots, result["seed"].as_u64()), (100, Some(7)), "{result}");
        let zz = &result["expectation_values"][0];
        assert_eq!(zz["observable"], "Z0 Z1");
        // Single precision.
        assert!(
            (zz["value"].as_f64().unwrap() - 1.0).abs() < 1e-6,
            "{result}"
        );
    }

    #[test]
    fn a_job_that_requires_cuda_or_holds_a_model_fails_on_a_cpu_quantum_head_saying_why() {
        let Outcome::Failed(said) = run(&bell_job(true)) else {
            panic!("a cuda job ran on the CPU");
        };
        assert!(
            said.contains("requires `cuda`") && said.contains("not run on the CPU"),
            "{said}"
        );
        let mut model = bell_job(false);
        let spec = "model: m\ninputs: [[1.0]]";
        model.blocks[0].run =
            BlockRun::Infer(chimera_ai::spec::InferSpec::from_yaml(spec).unwrap());
        let Outcome::Failed(said) = run(&model) else {
            panic!("a quantum head ran a model");
        };
        assert_eq!(
            said,
            "code block at line 12: a quantum head does not run chimera-infer blocks; the engine \
             sent this job to the wrong head"
        );
    }
}
