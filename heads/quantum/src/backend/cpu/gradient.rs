//! The adjoint gradient of one circuit's expectation value with respect to its gate parameters
//! (Jones and Gacon, arXiv:2009.02823), on the CPU backend's multithreaded states: what the
//! Python package's PennyLane device and `Simulator.gradient` compute.
//!
//! Unlike a hybrid layer's rotations (`layer.rs`), a parameter here may sit in any gate: each
//! parameterised gate comes with the derivative of its matrix, dU/dθ, and the method reads
//! 2 Re⟨λ|dU/dθ|φ⟩, with φ the state just before the gate and λ = U_{i+1}^†…U_L^† O ψ. Three
//! states: φ, λ, and the copy of φ the derivative is applied to.

use super::{CpuBackend, CpuState, fits, refusal};
use crate::backend::StateVector;
use crate::run::RunError;
use chimera_circuit::circuit::{C64, Gate};
use chimera_circuit::memory::Precision;
use chimera_circuit::pauli::{PauliString, PauliSum};
use rayon::prelude::*;

/// A gate of a circuit being differentiated, with dU/dθ for each parameter it depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct DifferentiableGate {
    pub gate: Gate,
    /// (parameter index, the derivative of `gate.matrix` by it, on the same qubits).
    pub derivatives: Vec<(usize, Gate)>,
}

/// ⟨ψ|O|ψ⟩ and its gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradient {
    pub value: f64,
    /// d⟨O⟩/dθ_p for each parameter p (a parameter in several gates sums their terms).
    pub parameters: Vec<f64>,
}

impl CpuBackend {
    /// The adjoint method over `gates` (applied to |0…0⟩ in double precision), for `observable`
    /// and `parameters` parameters.
    pub fn adjoint_gradient(
        &self,
        num_qubits: usize,
        gates: &[DifferentiableGate],
        observable: &PauliSum,
        parameters: usize,
    ) -> Result<Gradient, RunError> {
        if let Some(q) = observable.max_qubit().filter(|&q| q >= num_qubits) {
            return Err(RunError::ObservableQubit {
                observable: observable.text.clone(),
                qubit: q,
                num_qubits,
            });
        }
        let refuse = || RunError::Backend(refusal(num_qubits, Precision::Double, 3));
        if !fits(num_qubits, Precision::Double, 3) {
            return Err(refuse());
        }
        let mut phi = CpuState::<f64>::new(num_qubits, self.shared.clone()).ok_or_else(refuse)?;
        let plain: Vec<Gate> = gates.iter().map(|g| g.gate.clone()).collect();
        phi.apply(&plain);
        let value = observable
            .terms
            .iter()
            .map(|(c, p)| c * phi.expectation(p))
            .sum();
        let mut lambda = self.observable_times(&phi, observable).ok_or_else(refuse)?;
        let mut gradient = vec![0.0; parameters];
        let first = gates.iter().position(|g| !g.derivatives.is_empty());
        let mut undone = gates.len();
        for at in (first.unwrap_or(gates.len())..gates.len()).rev() {
            if gates[at].derivatives.is_empty() {
                continue;
            }
            // The gates after this one, undone together (the backend fuses them).
            let inverses: Vec<Gate> = plain[at..undone].iter().rev().map(Gate::adjoint).collect();
            phi.apply(&inverses);
            lambda.apply(&inverses[..inverses.len() - 1]);
            undone = at;
            for (parameter, derivative) in &gates[at].derivatives {
                let mut moved = phi.duplicate_typed().ok_or_else(refuse)?;
                moved.apply(std::slice::from_ref(derivative));
                gradient[*parameter] += 2.0 * self.overlap(&lambda, &moved).re;
            }
            lambda.apply(&inverses[inverses.len() - 1..]);
        }
        Ok(Gradient {
            value,
            parameters: gradient,
        })
    }

    /// O|φ⟩ as a new state, or `None` when it cannot be allocated.
    fn observable_times(
        &self,
        phi: &CpuState<f64>,
        observable: &PauliSum,
    ) -> Option<CpuState<f64>> {
        let mut out = CpuState::<f64>::new(phi.num_qubits, self.shared.clone())?;
        out.amps[0] = C64::new(0.0, 0.0);
        let len = out.amps.len();
        let (amps, from) = (&mut out.amps, &phi.amps);
        self.shared.install(len, || {
            amps.par_iter_mut().enumerate().for_each(|(j, a)| {
                *a = observable
                    .terms
                    .iter()
                    .map(|(c, p)| pauli_row(p, *c, from, j))
                    .sum();
            });
        });
        Some(out)
    }

    /// ⟨a|b⟩.
    fn overlap(&self, a: &CpuState<f64>, b: &CpuState<f64>) -> C64 {
        self.shared.install(a.amps.len(), || {
            (a.amps.par_iter().zip(&b.amps))
                .map(|(x, y)| x.conj() * y)
                .sum()
        })
    }
}

/// Amplitude `j` of c·P|φ⟩: P sends |i⟩ to phase·(-1)^popcount(i & sign)|i ^ flip⟩, so row j
/// reads column j ^ flip.
fn pauli_row(p: &PauliString, c: f64, phi: &[C64], j: usize) -> C64 {
    let i = j ^ p.flip as usize;
    let sign = if (i as u64 & p.sign).count_ones().is_multiple_of(2) {
        c
    } else {
        -c
    };
    p.phase() * phi[i] * sign
}

impl CpuState<f64> {
    /// A copy, or `None` when it cannot be allocated.
    fn duplicate_typed(&self) -> Option<CpuState<f64>> {
        let mut amps = Vec::new();
        amps.try_reserve_exact(self.amps.len()).ok()?;
        let len = self.amps.len();
        self.shared
            .install(len, || amps.par_extend(self.amps.par_iter().copied()));
        Some(CpuState {
            amps,
            num_qubits: self.num_qubits,
            shared: self.shared.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chimera_circuit::gates;

    fn rotation_y(qubit: usize, theta: f64, parameter: usize) -> DifferentiableGate {
        // d/dθ RY(θ) = RY(θ + π) / 2.
        let derivative = gates::ry(theta + std::f64::consts::PI)
            .into_iter()
            .map(|m| m * 0.5)
            .collect();
        DifferentiableGate {
            gate: Gate::new(vec![qubit], gates::ry(theta)),
            derivatives: vec![(parameter, Gate::new(vec![qubit], derivative))],
        }
    }

    fn fixed(qubits: Vec<usize>, matrix: Vec<C64>) -> DifferentiableGate {
        DifferentiableGate {
            gate: Gate::new(qubits, matrix),
            derivatives: vec![],
        }
    }

    /// ⟨O⟩ of the circuit with every RY angle as given, by a plain simulation.
    fn value(backend: &CpuBackend, n: usize, gates: &[DifferentiableGate], o: &PauliSum) -> f64 {
        let mut state = CpuState::<f64>::new(n, backend.shared.clone()).unwrap();
        state.apply(&gates.iter().map(|g| g.gate.clone()).collect::<Vec<_>>());
        o.terms.iter().map(|(c, p)| c * state.expectation(p)).sum()
    }

    #[test]
    fn the_adjoint_gradient_matches_finite_differences_with_a_shared_parameter() {
        let backend = CpuBackend::new(Some(2)).unwrap();
        let observable = PauliSum::parse("Z0 Z1 + 0.5*X2 - 0.3*Y1").unwrap();
        let circuit = |t: [f64; 2]| {
            vec![
                fixed(vec![2], gates::h()),
                rotation_y(0, t[0], 0),
                fixed(vec![0, 1], gates::controlled(&gates::x(), 1)),
                rotation_y(1, t[1], 1),
                fixed(vec![1, 2], gates::rzz(0.4)),
                rotation_y(2, t[0], 0),
                fixed(vec![2], gates::sx()),
            ]
        };
        let theta = [0.7, -1.1];
        let got = backend
            .adjoint_gradient(3, &circuit(theta), &observable, 2)
            .unwrap();
        assert!((got.value - value(&backend, 3, &circuit(theta), &observable)).abs() < 1e-12);
        for p in 0..2 {
            let h = 1e-6;
            let (mut up, mut down) = (theta, theta);
            up[p] += h;
            down[p] -= h;
            let expected = (value(&backend, 3, &circuit(up), &observable)
                - value(&backend, 3, &circuit(down), &observable))
                / (2.0 * h);
            assert!(
                (got.parameters[p] - expected).abs() < 1e-7,
                "parameter {p}: adjoint {} finite differences {expected}",
                got.parameters[p]
            );
        }
    }

    #[test]
    fn an_observable_beyond_the_circuit_is_refused_by_name() {
        let backend = CpuBackend::new(Some(1)).unwrap();
        let observable = PauliSum::parse("Z5").unwrap();
        let err = backend
            .adjoint_gradient(2, &[rotation_y(0, 0.1, 0)], &observable, 1)
            .unwrap_err();
        assert!(err.to_string().contains("qubit 5"), "{err}");
    }
}
