//! The in-process simulator: the engine's backends (CPU always, a GPU where asked or found) run
//! circuits with the GIL released.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chimera_circuit::circuit::C64;
use chimera_circuit::memory::Precision;
use chimera_circuit::pauli::PauliSum;
use chimera_quantum::backend::cpu::CpuBackend;
use chimera_quantum::backend::cpu::gradient::{Derivative, DifferentiableGate};
use chimera_quantum::backend::cuda::CudaBackend;
use chimera_quantum::backend::{Amplitudes, Backend};
use chimera_quantum::run::{RunOptions, RunOutput, run};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::circuit::{Circuit, Shape, at};
use crate::errors;
use crate::sweep::Template;

/// A gate of a circuit to differentiate, as Python writes it: (qubits, matrix, [(parameter,
/// dU/dθ)]), dU/dθ a matrix or, for U = exp(iθG), the generator G as Pauli-sum text.
type DifferentiableTuple<'py> = (
    Vec<usize>,
    PyReadonlyArray2<'py, C64>,
    Vec<(usize, Bound<'py, PyAny>)>,
);

#[pyclass(frozen, module = "chimera._native")]
pub struct Simulator {
    cpu: Arc<CpuBackend>,
    gpu: Option<Arc<CudaBackend>>,
    precision: Precision,
    seed: Option<u64>,
    calls: AtomicU64,
}

#[pymethods]
impl Simulator {
    #[new]
    #[pyo3(signature = (precision="double", threads=None, backend="auto", seed=None))]
    fn new(
        precision: &str,
        threads: Option<usize>,
        backend: &str,
        seed: Option<u64>,
    ) -> PyResult<Self> {
        let precision = match precision {
            "double" => Precision::Double,
            "single" => Precision::Single,
            other => {
                return Err(PyValueError::new_err(format!(
                    "precision {other:?}: expected \"double\" or \"single\""
                )));
            }
        };
        if threads == Some(0) {
            return Err(PyValueError::new_err(
                "threads=0: give at least 1, or None for every core",
            ));
        }
        let cpu = Arc::new(CpuBackend::new(threads).map_err(errors::backend)?);
        let gpu = match backend {
            "cpu" => None,
            "auto" => CudaBackend::new().ok().map(Arc::new),
            "cuda" => Some(Arc::new(CudaBackend::new().map_err(errors::backend)?)),
            other => {
                return Err(PyValueError::new_err(format!(
                    "backend {other:?}: expected \"auto\", \"cpu\" or \"cuda\""
                )));
            }
        };
        Ok(Simulator {
            cpu,
            gpu,
            precision,
            seed,
            calls: AtomicU64::new(0),
        })
    }

    /// What runs the circuits: "cpu (avx2+fma, 8 threads)" or the GPU's name.
    #[getter]
    fn backend(&self) -> String {
        self.backend_ref().describe()
    }

    #[getter]
    fn precision(&self) -> &'static str {
        self.precision.name()
    }

    /// The final state, amplitude i being basis state i with qubit q as bit q (Qiskit's order);
    /// moved into NumPy, not copied. Measurements at the end are left out; a circuit with
    /// mid-circuit measurements gives one trajectory's state.
    fn statevector<'py>(&self, py: Python<'py>, circuit: &Circuit) -> PyResult<Bound<'py, PyAny>> {
        let output = self.run(py, circuit, 0, Vec::new(), true)?;
        Ok(match output.state.expect("the state was kept") {
            Amplitudes::Double(v) => v.into_pyarray(py).into_any(),
            Amplitudes::Single(v) => v.into_pyarray(py).into_any(),
        })
    }

    /// Outcome counts over `shots` shots, keyed as Qiskit keys them: classical registers
    /// last-declared first, separated by spaces, most significant bit first; a circuit with no
    /// measurement has every qubit measured.
    fn sample(
        &self,
        py: Python<'_>,
        circuit: &Circuit,
        shots: usize,
    ) -> PyResult<BTreeMap<String, u64>> {
        if shots == 0 {
            return Err(PyValueError::new_err("shots=0: ask for at least one shot"));
        }
        Ok(self.run(py, circuit, shots, Vec::new(), false)?.counts)
    }

    /// ⟨O⟩ for each observable, written as Pauli sums such as "Z0 Z1 + 0.5*X2" (qubit q as in
    /// `statevector`).
    fn expectation(
        &self,
        py: Python<'_>,
        circuit: &Circuit,
        observables: Vec<String>,
    ) -> PyResult<Vec<f64>> {
        let observables = observables
            .iter()
            .map(|o| pauli_sum(o))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(self.run(py, circuit, 0, observables, false)?.expectations)
    }

    /// ⟨O⟩ of the gates applied to |0…0⟩, and its gradient by each of `parameters` parameters
    /// (each gate's derivative a matrix, or its generator as Pauli-sum text), by the adjoint method (on the CPU, in double precision, whatever the simulator's backend).
    fn gradient<'py>(
        &self,
        py: Python<'py>,
        num_qubits: usize,
        gates: Vec<DifferentiableTuple<'_>>,
        observable: &str,
        parameters: usize,
    ) -> PyResult<(f64, Bound<'py, PyArray1<f64>>)> {
        let observable = pauli_sum(observable)?;
        let gates = differentiable(num_qubits, gates, parameters)?;
        let cpu = self.cpu.clone();
        let gradient = py
            .detach(move || cpu.adjoint_gradient(num_qubits, &gates, &observable, parameters))
            .map_err(errors::run)?;
        Ok((gradient.value, gradient.parameters.into_pyarray(py)))
    }

    /// ⟨O⟩ for each (point, observable) of `pairs`: the template bound at row `point` of
    /// `angles`, each point simulated once whatever number of observables it is asked for.
    fn expectation_sweep(
        &self,
        py: Python<'_>,
        template: &Template,
        angles: PyReadonlyArray2<'_, f64>,
        observables: Vec<String>,
        pairs: Vec<(usize, usize)>,
    ) -> PyResult<Vec<f64>> {
        let observables = observables
            .iter()
            .map(|o| pauli_sum(o))
            .collect::<PyResult<Vec<_>>>()?;
        let rows = template.rows(&angles)?;
        let mut by_point: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
        for (at, &(point, observable)) in pairs.iter().enumerate() {
            if point >= rows.len() || observable >= observables.len() {
                return Err(PyValueError::new_err(format!(
                    "pair {at}: point {point} of {}, observable {observable} of {}",
                    rows.len(),
                    observables.len()
                )));
            }
            by_point.entry(point).or_default().push((at, observable));
        }
        let backend = self.backend_ref();
        let precision = self.precision;
        py.detach(|| {
            let mut values = vec![0.0; pairs.len()];
            for (point, wanted) in &by_point {
                let options = RunOptions {
                    shots: 0,
                    seed: 0,
                    precision,
                    observables: wanted
                        .iter()
                        .map(|&(_, o)| observables[o].clone())
                        .collect(),
                    keep_state: false,
                };
                let output = run(&template.bind(rows[*point]), backend, &options)?;
                for (&(at, _), value) in wanted.iter().zip(output.expectations) {
                    values[at] = value;
                }
            }
            Ok(values)
        })
        .map_err(errors::run)
    }

    /// Outcome counts (keyed as `sample` keys them) for each row of `angles`: the template bound
    /// there and sampled `shots` times.
    fn sample_sweep(
        &self,
        py: Python<'_>,
        template: &Template,
        angles: PyReadonlyArray2<'_, f64>,
        shots: usize,
    ) -> PyResult<Vec<BTreeMap<String, u64>>> {
        if shots == 0 {
            return Err(PyValueError::new_err("shots=0: ask for at least one shot"));
        }
        let rows = template.rows(&angles)?;
        let backend = self.backend_ref();
        let seeds: Vec<u64> = rows.iter().map(|_| self.next_seed()).collect();
        py.detach(|| {
            (rows.iter().zip(seeds))
                .map(|(row, seed)| {
                    let options = RunOptions {
                        shots,
                        seed,
                        precision: self.precision,
                        observables: Vec::new(),
                        keep_state: false,
                    };
                    run(&template.bind(row), backend, &options).map(|output| output.counts)
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(errors::run)
    }

    fn __repr__(&self) -> String {
        format!("Simulator({}, {})", self.precision.name(), self.backend())
    }
}

impl Simulator {
    fn backend_ref(&self) -> &dyn Backend {
        match &self.gpu {
            Some(gpu) => gpu.as_ref(),
            None => self.cpu.as_ref(),
        }
    }

    /// The next run's seed: the simulator's own sequence when seeded, else fresh.
    fn next_seed(&self) -> u64 {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        match self.seed {
            Some(seed) => seed.wrapping_add(call),
            None => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                now ^ call.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            }
        }
    }

    fn run(
        &self,
        py: Python<'_>,
        circuit: &Circuit,
        shots: usize,
        observables: Vec<PauliSum>,
        keep_state: bool,
    ) -> PyResult<RunOutput> {
        let options = RunOptions {
            shots,
            seed: self.next_seed(),
            precision: self.precision,
            observables,
            keep_state,
        };
        let ir = &circuit.ir;
        let backend = self.backend_ref();
        py.detach(|| run(ir, backend, &options))
            .map_err(errors::run)
    }
}

/// Pauli-sum text read, a `ValueError` saying where it is wrong otherwise.
fn pauli_sum(text: &str) -> PyResult<PauliSum> {
    PauliSum::parse(text).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// The gates of a circuit to differentiate, checked.
fn differentiable(
    num_qubits: usize,
    gates: Vec<DifferentiableTuple<'_>>,
    parameters: usize,
) -> PyResult<Vec<DifferentiableGate>> {
    let shape = Shape {
        num_qubits,
        num_clbits: 0,
    };
    (gates.into_iter().enumerate())
        .map(|(i, (qubits, matrix, derivatives))| {
            let gate = shape.gate(qubits.clone(), &matrix).map_err(|e| at(i, e))?;
            let derivatives = (derivatives.into_iter())
                .map(|(p, d)| {
                    if p >= parameters {
                        return Err(PyValueError::new_err(format!(
                            "operation {i}: parameter {p} of {parameters}"
                        )));
                    }
                    let derivative = match d.extract::<String>() {
                        Ok(text) => Derivative::Generator(pauli_sum(&text)?),
                        Err(_) => Derivative::Matrix(
                            shape
                                .gate(qubits.clone(), &d.extract()?)
                                .map_err(|e| at(i, e))?,
                        ),
                    };
                    Ok((p, derivative))
                })
                .collect::<PyResult<Vec<_>>>()?;
            Ok(DifferentiableGate { gate, derivatives })
        })
        .collect()
}
