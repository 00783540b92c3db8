//! Running a circuit on a backend: gates, measurements, resets and classical control; shots;
//! expectation values.

use crate::backend::{Amplitudes, Backend, BackendError, StateVector, Work};
use chimera_circuit::circuit::{Circuit, Condition, Gate, Op, gates_in};
use chimera_circuit::gates;
use chimera_circuit::memory::Precision;
use chimera_circuit::pauli::PauliSum;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub shots: usize,
    pub seed: u64,
    pub precision: Precision,
    pub observables: Vec<PauliSum>,
    /// Copy the final state out of the backend.
    pub keep_state: bool,
}

/// How shots were taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShotMode {
    /// The circuit is unitary up to final measurements: simulated once, shots drawn from the final state.
    Sampled,
    /// Mid-circuit measurement, reset or classical control: each shot is its own run (trajectory).
    Trajectories,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    /// Everything from allocating the state to the last gate (shot by shot: all but expectations).
    pub simulate: Duration,
    /// The part of `simulate` that allocated and initialised the state (synchronised).
    pub allocate: Duration,
    pub sample: Duration,
    pub expectation: Duration,
}

#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Outcome counts keyed as Qiskit does: classical registers last-declared first, separated by
    /// spaces, each written most significant bit first. A circuit with no `measure` has every qubit
    /// measured at the end instead, keyed `q[n-1]...q[0]`.
    pub counts: BTreeMap<String, u64>,
    pub measured_all_qubits: bool,
    /// One value per observable, in order; averaged over shots for trajectory runs.
    pub expectations: Vec<f64>,
    /// The final state (of the last trajectory, for trajectory runs) when asked for.
    pub state: Option<Amplitudes>,
    pub mode: ShotMode,
    pub timings: Timings,
    /// The gate passes this run made over its states.
    pub work: Work,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("observable \"{observable}\" names qubit {qubit}, but the circuit has {num_qubits} qubits (0 to {})", .num_qubits.saturating_sub(1))]
    ObservableQubit {
        observable: String,
        qubit: usize,
        num_qubits: usize,
    },
}

pub fn run(
    circuit: &Circuit,
    backend: &dyn Backend,
    options: &RunOptions,
) -> Result<RunOutput, RunError> {
    let n = circuit.num_qubits;
    for obs in &options.observables {
        if let Some(q) = obs.max_qubit().filter(|&q| q >= n) {
            return Err(RunError::ObservableQubit {
                observable: obs.text.clone(),
                qubit: q,
                num_qubits: n,
            });
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let measures: Vec<(usize, usize)> = circuit
        .ops
        .iter()
        .filter_map(|op| match op {
            Op::Measure { qubit, clbit } => Some((*qubit, *clbit)),
            _ => None,
        })
        .collect();
    let measured_all_qubits = !circuit
        .ops
        .iter()
        .any(|op| matches!(op, Op::Measure { .. } | Op::If { .. }));
    let mut timings = Timings::default();
    let work_before = backend.work();
    let start = Instant::now();
    let mut state = backend.allocate(n, options.precision)?;
    state.wait();
    timings.allocate = start.elapsed();

    if circuit.measurements_are_terminal() {
        let gates = gates_in(&circuit.ops);
        state.apply(&gates);
        state.wait();
        timings.simulate = start.elapsed();
        let t = Instant::now();
        let expectations = expectations(state.as_ref(), &options.observables);
        timings.expectation = t.elapsed();
        let t = Instant::now();
        let mut uniforms: Vec<f64> = (0..options.shots).map(|_| uniform(&mut rng)).collect();
        uniforms.sort_by(f64::total_cmp);
        let mut counts = BTreeMap::new();
        for index in state.sample(&uniforms) {
            let key = if measured_all_qubits {
                basis_key(index, n)
            } else {
                let mut bits = vec![false; circuit.num_clbits];
                for &(q, c) in &measures {
                    bits[c] = (index >> q) & 1 == 1;
                }
                clbits_key(circuit, &bits)
            };
            *counts.entry(key).or_insert(0) += 1;
        }
        timings.sample = t.elapsed();
        return Ok(RunOutput {
            counts,
            measured_all_qubits,
            expectations,
            state: options.keep_state.then(|| state.amplitudes()),
            mode: ShotMode::Sampled,
            timings,
            work: backend.work() - work_before,
        });
    }

    // Dynamic circuit: the gates before the first non-unitary operation run once; each shot then
    // runs the rest on its own copy.
    let prefix = circuit
        .ops
        .iter()
        .take_while(|op| matches!(op, Op::Gate(_)))
        .count();
    let prefix_gates = gates_in(&circuit.ops[..prefix]);
    state.apply(&prefix_gates);
    let steps = steps(&circuit.ops[prefix..]);
    let mut counts = BTreeMap::new();
    let mut sums = vec![0.0; options.observables.len()];
    let runs = options.shots.max(1);
    let mut last = None;
    for shot in 0..runs {
        let mut s = if shot + 1 == runs {
            std::mem::replace(&mut state, backend.allocate(0, options.precision)?)
        } else {
            state.duplicate()
        };
        let mut bits = vec![false; circuit.num_clbits];
        for step in &steps {
            match step {
                Step::Gates(gates) => s.apply(gates),
                Step::Op(op) => execute(s.as_mut(), op, &mut bits, &mut rng),
            }
        }
        s.wait();
        let t = Instant::now();
        for (sum, v) in sums
            .iter_mut()
            .zip(expectations(s.as_ref(), &options.observables))
        {
            *sum += v;
        }
        timings.expectation += t.elapsed();
        if options.shots > 0 {
            let key = if measured_all_qubits {
                basis_key(s.sample(&[uniform(&mut rng)])[0], n)
            } else {
                clbits_key(circuit, &bits)
            };
            *counts.entry(key).or_insert(0) += 1;
        }
        if shot + 1 == runs {
            last = Some(s);
        }
    }
    // Shot by shot, everything but the expectation values counts as simulation.
    timings.simulate = start.elapsed() - timings.expectation;
    Ok(RunOutput {
        counts,
        measured_all_qubits,
        expectations: sums.iter().map(|s| s / runs as f64).collect(),
        state: last.filter(|_| options.keep_state).map(|s| s.amplitudes()),
        mode: ShotMode::Trajectories,
        timings,
        work: backend.work() - work_before,
    })
}

enum Step {
    Gates(Vec<Gate>),
    Op(Op),
}

/// Consecutive gates batched, so that the backend can fuse and block them.
fn steps(ops: &[Op]) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    for op in ops {
        match (op, out.last_mut()) {
            (Op::Gate(g), Some(Step::Gates(run))) => run.push(g.clone()),
            (Op::Gate(g), _) => out.push(Step::Gates(vec![g.clone()])),
            (other, _) => out.push(Step::Op(other.clone())),
        }
    }
    out
}

fn execute(s: &mut dyn StateVector, op: &Op, bits: &mut [bool], rng: &mut ChaCha8Rng) {
    match op {
        Op::Gate(g) => s.apply(std::slice::from_ref(g)),
        Op::Measure { qubit, clbit } => bits[*clbit] = measure(s, *qubit, rng),
        Op::Reset { qubit } => {
            if measure(s, *qubit, rng) {
                s.apply(&[Gate::new(vec![*qubit], gates::x())]);
            }
        }
        Op::If { condition, op } => {
            if holds(condition, bits) {
                execute(s, op, bits, rng);
            }
        }
    }
}

fn measure(s: &mut dyn StateVector, qubit: usize, rng: &mut ChaCha8Rng) -> bool {
    let p1 = s.probability_of_one(qubit).clamp(0.0, 1.0);
    let outcome = uniform(rng) < p1;
    s.collapse(qubit, outcome, if outcome { p1 } else { 1.0 - p1 });
    outcome
}

fn holds(c: &Condition, bits: &[bool]) -> bool {
    let value = bits[c.start..c.start + c.size]
        .iter()
        .enumerate()
        .fold(0u128, |acc, (i, &b)| acc | ((b as u128) << i.min(127)));
    value == c.value as u128
}

fn expectations(s: &dyn StateVector, observables: &[PauliSum]) -> Vec<f64> {
    observables
        .iter()
        .map(|o| {
            o.terms
                .iter()
                .map(|(coef, p)| coef * s.expectation(p))
                .sum()
        })
        .collect()
}

/// A uniform draw in [0, 1) with 53 random bits.
fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

fn basis_key(index: u64, n: usize) -> String {
    (0..n)
        .rev()
        .map(|q| if (index >> q) & 1 == 1 { '1' } else { '0' })
        .collect()
}

fn clbits_key(circuit: &Circuit, bits: &[bool]) -> String {
    circuit
        .cregs
        .iter()
        .rev()
        .map(|r| {
            (0..r.size)
                .rev()
                .map(|i| if bits[r.start + i] { '1' } else { '0' })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(" ")
}
