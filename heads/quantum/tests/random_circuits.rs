//! Random circuits of random dense gates (1 to 5 qubits, any qubit order) on every backend
//! configuration, against the naive reference simulator: the fused, blocked, vectorised paths must
//! compute the same linear map.

mod common;

use chimera_quantum::backend::{Backend, Precision};
use chimera_quantum::circuit::{C64, Gate};

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn normal(&mut self) -> f64 {
        // Sum of uniforms: close enough to normal for test matrices.
        (0..6)
            .map(|_| (self.next() >> 11) as f64 / (1u64 << 53) as f64)
            .sum::<f64>()
            - 3.0
    }
}

fn random_gate(rng: &mut XorShift, n: usize) -> Gate {
    let k = 1 + rng.below(5.min(n));
    let mut qubits: Vec<usize> = Vec::new();
    while qubits.len() < k {
        let q = rng.below(n);
        if !qubits.contains(&q) {
            qubits.push(q);
        }
    }
    let d = 1 << k;
    let scale = 1.0 / (d as f64).sqrt();
    let matrix = match rng.below(5) {
        // Diagonal: the diagonal kernel.
        0 => (0..d * d)
            .map(|i| {
                if i / d == i % d {
                    phase(rng)
                } else {
                    C64::new(0.0, 0.0)
                }
            })
            .collect(),
        // A permutation with phases, like SWAP, CX or CCX: the sparse kernel.
        1 => {
            let mut perm: Vec<usize> = (0..d).collect();
            for i in (1..d).rev() {
                perm.swap(i, rng.below(i + 1));
            }
            let mut m = vec![C64::new(0.0, 0.0); d * d];
            for (r, &c) in perm.iter().enumerate() {
                m[r * d + c] = phase(rng);
            }
            m
        }
        // A controlled gate: identity except a dense block where the first qubit is set.
        2 if k > 1 => (0..d * d)
            .map(|i| {
                let (r, c) = (i / d, i % d);
                match (r & 1, c & 1) {
                    (1, 1) => C64::new(rng.normal(), rng.normal()) * scale,
                    (0, 0) if r == c => C64::new(1.0, 0.0),
                    _ => C64::new(0.0, 0.0),
                }
            })
            .collect(),
        _ => (0..d * d)
            .map(|_| C64::new(rng.normal(), rng.normal()) * scale)
            .collect(),
    };
    Gate::new(qubits, matrix)
}

fn phase(rng: &mut XorShift) -> C64 {
    C64::from_polar(1.0, rng.normal())
}

fn relative_error(a: &[C64], b: &[C64]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y).norm_sqr()).sum();
    let norm: f64 = b.iter().map(|y| y.norm_sqr()).sum();
    (diff / norm).sqrt()
}

#[test]
fn random_dense_circuits_match_the_reference() {
    let backends = common::cpu_backends();
    let mut rng = XorShift(0x9E3779B97F4A7C15);
    for case in 0..60 {
        let n = 1 + rng.below(11);
        let gates: Vec<Gate> = (0..1 + rng.below(40))
            .map(|_| random_gate(&mut rng, n))
            .collect();
        let reference = common::reference_state(n, &gates);
        for (name, backend) in &backends {
            for (precision, tolerance) in [(Precision::Double, 1e-10), (Precision::Single, 2e-5)] {
                let mut state = backend.allocate(n, precision).unwrap();
                state.apply(&gates);
                let psi = common::to_c64(&state.amplitudes());
                let err = relative_error(&psi, &reference);
                assert!(
                    err < tolerance * gates.len() as f64,
                    "case {case}: {n} qubits, {} gates, on {name} in {precision:?}: relative error {err}",
                    gates.len()
                );
            }
        }
    }
}

#[test]
fn parallel_slices_match_the_reference_at_16_qubits() {
    // At 16 qubits and up the backend splits the state among threads.
    let mut rng = XorShift(42);
    let n = 16;
    let gates: Vec<Gate> = (0..30).map(|_| random_gate(&mut rng, n)).collect();
    let reference = common::reference_state(n, &gates);
    for (name, backend) in common::cpu_backends() {
        let mut state = backend.allocate(n, Precision::Double).unwrap();
        state.apply(&gates);
        let err = relative_error(&common::to_c64(&state.amplitudes()), &reference);
        assert!(err < 1e-9, "{name}: relative error {err}");
    }
}
