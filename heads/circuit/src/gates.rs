//! Matrices of the standard gates, in the convention of [`crate::circuit::Gate`]: bit j of an index
//! is the gate's j-th qubit argument. Each matches the unitary Qiskit gives the qelib1.inc gate of the
//! same name exactly, global phase included (checked against Qiskit in `tests/qelib1.rs`).

use crate::circuit::C64;
use std::f64::consts::FRAC_1_SQRT_2;

const fn c(re: f64, im: f64) -> C64 {
    C64::new(re, im)
}
const O: C64 = c(0.0, 0.0);
const I1: C64 = c(1.0, 0.0);
const IM: C64 = c(0.0, 1.0);

fn cis(theta: f64) -> C64 {
    C64::from_polar(1.0, theta)
}

/// U(θ, φ, λ) of OpenQASM 2.0 (and Qiskit's `u`, `u3`).
pub fn u(theta: f64, phi: f64, lambda: f64) -> Vec<C64> {
    let (s, co) = (theta / 2.0).sin_cos();
    vec![
        c(co, 0.0),
        -cis(lambda) * s,
        cis(phi) * s,
        cis(phi + lambda) * co,
    ]
}

pub fn phase(lambda: f64) -> Vec<C64> {
    vec![I1, O, O, cis(lambda)]
}

pub fn rx(theta: f64) -> Vec<C64> {
    let (s, co) = (theta / 2.0).sin_cos();
    vec![c(co, 0.0), c(0.0, -s), c(0.0, -s), c(co, 0.0)]
}

pub fn ry(theta: f64) -> Vec<C64> {
    let (s, co) = (theta / 2.0).sin_cos();
    vec![c(co, 0.0), c(-s, 0.0), c(s, 0.0), c(co, 0.0)]
}

pub fn rz(theta: f64) -> Vec<C64> {
    vec![cis(-theta / 2.0), O, O, cis(theta / 2.0)]
}

pub fn identity(qubits: usize) -> Vec<C64> {
    identity_dim(1 << qubits)
}

pub fn x() -> Vec<C64> {
    vec![O, I1, I1, O]
}

pub fn y() -> Vec<C64> {
    vec![O, -IM, IM, O]
}

pub fn z() -> Vec<C64> {
    vec![I1, O, O, -I1]
}

pub fn h() -> Vec<C64> {
    let r = FRAC_1_SQRT_2;
    vec![c(r, 0.0), c(r, 0.0), c(r, 0.0), c(-r, 0.0)]
}

pub fn sx() -> Vec<C64> {
    vec![c(0.5, 0.5), c(0.5, -0.5), c(0.5, -0.5), c(0.5, 0.5)]
}

pub fn sxdg() -> Vec<C64> {
    vec![c(0.5, -0.5), c(0.5, 0.5), c(0.5, 0.5), c(0.5, -0.5)]
}

pub fn swap() -> Vec<C64> {
    let mut m = vec![O; 16];
    for (r, col) in [(0, 0), (1, 2), (2, 1), (3, 3)] {
        m[r * 4 + col] = I1;
    }
    m
}

/// exp(-iθ/2 X⊗X)
pub fn rxx(theta: f64) -> Vec<C64> {
    let (s, co) = (theta / 2.0).sin_cos();
    let mut m = vec![O; 16];
    for i in 0..4 {
        m[i * 4 + i] = c(co, 0.0);
        m[i * 4 + (3 - i)] = c(0.0, -s);
    }
    m
}

/// exp(-iθ/2 Z⊗Z)
pub fn rzz(theta: f64) -> Vec<C64> {
    let mut m = vec![O; 16];
    for i in 0..4 {
        let parity_odd = (i as u32).count_ones() % 2 == 1;
        m[i * 4 + i] = cis(if parity_odd {
            theta / 2.0
        } else {
            -theta / 2.0
        });
    }
    m
}

/// `u` on the high qubits, applied when all of the `controls` low qubits are set.
pub fn controlled(u: &[C64], controls: usize) -> Vec<C64> {
    let ud = (u.len() as f64).sqrt() as usize;
    let cd = 1 << controls;
    let d = ud * cd;
    let mut m = identity_dim(d);
    let on = cd - 1;
    for r in 0..ud {
        for col in 0..ud {
            m[(r * cd + on) * d + col * cd + on] = u[r * ud + col];
        }
    }
    m
}

fn identity_dim(d: usize) -> Vec<C64> {
    (0..d * d)
        .map(|i| if i / d == i % d { I1 } else { O })
        .collect()
}

pub fn scaled(m: Vec<C64>, factor: C64) -> Vec<C64> {
    m.into_iter().map(|v| v * factor).collect()
}

/// Qiskit's `rccx`: a Toffoli up to relative phases (controls 0 and 1, target 2).
pub fn rccx() -> Vec<C64> {
    let mut m = identity_dim(8);
    m[3 * 8 + 3] = O;
    m[7 * 8 + 7] = O;
    m[3 * 8 + 7] = -IM;
    m[7 * 8 + 3] = IM;
    m[5 * 8 + 5] = -I1;
    m
}

/// Qiskit's `rc3x`: a three-controlled X up to relative phases (controls 0 to 2, target 3).
pub fn rc3x() -> Vec<C64> {
    let mut m = identity_dim(16);
    m[3 * 16 + 3] = IM;
    m[11 * 16 + 11] = -IM;
    m[7 * 16 + 7] = O;
    m[15 * 16 + 15] = O;
    m[7 * 16 + 15] = I1;
    m[15 * 16 + 7] = -I1;
    m
}
