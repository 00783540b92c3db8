//! Helpers shared by the integration tests: backends in every configuration, and a naive
//! reference simulator to compare against.
#![allow(dead_code)]

use chimera_circuit::circuit::{C64, Gate};
use chimera_quantum::backend::Amplitudes;
use chimera_quantum::backend::cpu::{CpuBackend, Isa, Tuning};

/// Every CPU configuration worth testing: each instruction set this processor runs (AVX-512, AVX2,
/// portable), with its measured plan and with tiny blocks that force the gather/scatter path on
/// small circuits.
pub fn cpu_backends() -> Vec<(String, CpuBackend)> {
    let mut out = Vec::new();
    for isa in Isa::available() {
        let tunings = [
            Tuning::for_isa(isa),
            Tuning {
                block_qubits: 5,
                fuse_qubits: 2,
                contiguous_qubits: 2,
            },
            Tuning {
                block_qubits: 7,
                fuse_qubits: 4,
                contiguous_qubits: 1,
            },
            Tuning {
                block_qubits: 6,
                fuse_qubits: 1,
                contiguous_qubits: 3,
            },
        ];
        for t in tunings {
            let name = format!("{}/{:?}", isa.name(), t);
            out.push((name, CpuBackend::with(Some(2), isa, t).unwrap()));
        }
    }
    out
}

pub fn to_c64(a: &Amplitudes) -> Vec<C64> {
    match a {
        Amplitudes::Single(v) => v
            .iter()
            .map(|c| C64::new(c.re as f64, c.im as f64))
            .collect(),
        Amplitudes::Double(v) => v.clone(),
    }
}

/// |<a|b>|^2 / (|a|^2 |b|^2): one when the states agree up to global phase.
pub fn fidelity(a: &[C64], b: &[C64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let inner: C64 = a.iter().zip(b).map(|(x, y)| x.conj() * y).sum();
    let na: f64 = a.iter().map(|x| x.norm_sqr()).sum();
    let nb: f64 = b.iter().map(|x| x.norm_sqr()).sum();
    inner.norm_sqr() / (na * nb)
}

/// The obvious statevector simulation, gate by gate, in f64.
pub fn reference_state(num_qubits: usize, gates: &[Gate]) -> Vec<C64> {
    let mut psi = vec![C64::new(0.0, 0.0); 1 << num_qubits];
    psi[0] = C64::new(1.0, 0.0);
    for g in gates {
        let d = g.dim();
        let mut out = vec![C64::new(0.0, 0.0); psi.len()];
        for (i, o) in out.iter_mut().enumerate() {
            let row = g
                .qubits
                .iter()
                .enumerate()
                .fold(0, |acc, (j, &q)| acc | (((i >> q) & 1) << j));
            for col in 0..d {
                let mut src = i;
                for (j, &q) in g.qubits.iter().enumerate() {
                    src = (src & !(1 << q)) | (((col >> j) & 1) << q);
                }
                *o += g.matrix[row * d + col] * psi[src];
            }
        }
        psi = out;
    }
    psi
}

pub fn read_npy(path: &std::path::Path) -> Vec<C64> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    npyz::NpyFile::new(&bytes[..])
        .unwrap()
        .into_vec::<C64>()
        .unwrap()
}

/// The conformance circuits: `$CHIMERA_CONFORMANCE_DIR` when set, else the project's
/// `../shared/conformance/qasm` when present (it may hold more circuits than were copied), else the
/// copy in `tests/data/conformance`.
pub fn conformance_dir() -> std::path::PathBuf {
    if let Ok(dir) = std::env::var("CHIMERA_CONFORMANCE_DIR") {
        return dir.into();
    }
    let manifest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shared = manifest.join("../../../shared/conformance/qasm");
    if shared.join("index.json").exists() {
        return shared;
    }
    manifest.join("tests/data/conformance")
}

/// (name, circuit source, reference state) for every conformance circuit.
pub fn conformance_circuits() -> Vec<(String, String, Vec<C64>)> {
    let dir = conformance_dir();
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    index
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let name = entry["name"].as_str().unwrap().to_string();
            let source = std::fs::read_to_string(dir.join(format!("{name}.qasm"))).unwrap();
            let reference = read_npy(&dir.join(format!("{name}.sv.npy")));
            (name, source, reference)
        })
        .collect()
}

/// A small deterministic generator for test inputs.
pub struct XorShift(pub u64);
impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn normal(&mut self) -> f64 {
        // Sum of uniforms: close enough to normal for test matrices.
        (0..6)
            .map(|_| (self.next() >> 11) as f64 / (1u64 << 53) as f64)
            .sum::<f64>()
            - 3.0
    }
}

/// A random gate on 1 to 5 distinct qubits of `n`: diagonal, a phased permutation, controlled or dense.
pub fn random_gate(rng: &mut XorShift, n: usize) -> Gate {
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

pub fn phase(rng: &mut XorShift) -> C64 {
    C64::from_polar(1.0, rng.normal())
}
