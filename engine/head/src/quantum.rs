//! A quantum head: runs a job's OpenQASM 2 circuits on the simulator, with the settings the door
//! read from its Context.

use std::sync::atomic::AtomicBool;

use chimera_job::{BlockRun, CheckedBlock, CheckedJob, CircuitSettings};
use chimera_quantum::backend::cpu::CpuBackend;
use chimera_quantum::backend::cuda::CudaBackend;
use chimera_quantum::backend::{Backend, BackendError, Work};
use chimera_quantum::run::{RunOptions, run as run_circuit};
use serde_json::{Value, json};

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
        _: &mut dyn FnMut(Value),
        _: &AtomicBool,
    ) -> Result<Option<Value>, BlockFailure> {
        let (BlockRun::Circuit(checked), Some(settings)) = (&block.run, &job.settings) else {
            let block = kind_of(&block.run);
            return Err(BlockFailure::NotThisRole {
                role: "quantum",
                block,
            });
        };
        let circuit = chimera_quantum::qasm::parse(&checked.program)?;
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
        Ok(Some(json!({
            "num_qubits": circuit.num_qubits,
            "gates": circuit.gate_count(),
            "shots": shots,
            "seed": seed,
            "precision": precision.name(),
            "backend": self.backend.describe(),
            "counts": out.counts,
            "expectation_values": options.observables.iter().zip(&out.expectations)
                .map(|(o, v)| json!({"observable": o.text, "value": v})).collect::<Vec<_>>(),
            "simulate_ms": out.timings.simulate.as_secs_f64() * 1e3,
            "gate_passes": out.work.gate_passes,
        })))
    }
}
