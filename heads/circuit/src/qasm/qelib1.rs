//! The gates of Qiskit's extended `qelib1.inc`, and the two built into OpenQASM 2.0 itself.

use crate::circuit::C64;
use crate::gates::{self, controlled};
use std::f64::consts::PI;

/// A gate the front end knows without a `gate` definition in the file.
pub struct Builtin {
    pub params: usize,
    pub qubits: usize,
    pub matrix: fn(&[f64]) -> Vec<C64>,
}

const fn b(params: usize, qubits: usize, matrix: fn(&[f64]) -> Vec<C64>) -> Builtin {
    Builtin {
        params,
        qubits,
        matrix,
    }
}

/// `U` and `CX`, defined by the language whether or not qelib1.inc is included.
pub fn primitive(name: &str) -> Option<Builtin> {
    Some(match name {
        "U" => b(3, 1, |p| gates::u(p[0], p[1], p[2])),
        "CX" => b(0, 2, |_| controlled(&gates::x(), 1)),
        _ => return None,
    })
}

pub fn qelib1(name: &str) -> Option<Builtin> {
    Some(match name {
        "u3" | "u" => b(3, 1, |p| gates::u(p[0], p[1], p[2])),
        "u2" => b(2, 1, |p| gates::u(PI / 2.0, p[0], p[1])),
        "u1" | "p" => b(1, 1, |p| gates::phase(p[0])),
        "u0" => b(1, 1, |_| gates::identity(1)),
        "id" => b(0, 1, |_| gates::identity(1)),
        "x" => b(0, 1, |_| gates::x()),
        "y" => b(0, 1, |_| gates::y()),
        "z" => b(0, 1, |_| gates::z()),
        "h" => b(0, 1, |_| gates::h()),
        "s" => b(0, 1, |_| gates::phase(PI / 2.0)),
        "sdg" => b(0, 1, |_| gates::phase(-PI / 2.0)),
        "t" => b(0, 1, |_| gates::phase(PI / 4.0)),
        "tdg" => b(0, 1, |_| gates::phase(-PI / 4.0)),
        "sx" => b(0, 1, |_| gates::sx()),
        "sxdg" => b(0, 1, |_| gates::sxdg()),
        "rx" => b(1, 1, |p| gates::rx(p[0])),
        "ry" => b(1, 1, |p| gates::ry(p[0])),
        "rz" => b(1, 1, |p| gates::rz(p[0])),
        "cx" => b(0, 2, |_| controlled(&gates::x(), 1)),
        "cy" => b(0, 2, |_| controlled(&gates::y(), 1)),
        "cz" => b(0, 2, |_| controlled(&gates::z(), 1)),
        "ch" => b(0, 2, |_| controlled(&gates::h(), 1)),
        "swap" => b(0, 2, |_| gates::swap()),
        "crx" => b(1, 2, |p| controlled(&gates::rx(p[0]), 1)),
        "cry" => b(1, 2, |p| controlled(&gates::ry(p[0]), 1)),
        "crz" => b(1, 2, |p| controlled(&gates::rz(p[0]), 1)),
        "cu1" | "cp" => b(1, 2, |p| controlled(&gates::phase(p[0]), 1)),
        "cu3" => b(3, 2, |p| controlled(&gates::u(p[0], p[1], p[2]), 1)),
        "csx" => b(0, 2, |_| controlled(&gates::sx(), 1)),
        "cu" => b(4, 2, |p| {
            let u = gates::scaled(gates::u(p[0], p[1], p[2]), C64::from_polar(1.0, p[3]));
            controlled(&u, 1)
        }),
        "rxx" => b(1, 2, |p| gates::rxx(p[0])),
        "rzz" => b(1, 2, |p| gates::rzz(p[0])),
        "ccx" => b(0, 3, |_| controlled(&gates::x(), 2)),
        "cswap" => b(0, 3, |_| controlled(&gates::swap(), 1)),
        "rccx" => b(0, 3, |_| gates::rccx()),
        "rc3x" => b(0, 4, |_| gates::rc3x()),
        "c3x" => b(0, 4, |_| controlled(&gates::x(), 3)),
        "c3sqrtx" => b(0, 4, |_| controlled(&gates::sx(), 3)),
        "c4x" => b(0, 5, |_| controlled(&gates::x(), 4)),
        _ => return None,
    })
}
