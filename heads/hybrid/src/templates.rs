//! The circuits hybrid models are usually built from, after PennyLane's templates of the same
//! names: an angle embedding of the inputs, then layers of weighted rotations each closed by a
//! ring of CNOTs from every qubit to the next (PennyLane's strongly entangling layers vary that
//! range from layer to layer; these keep it at 1).

use chimera_circuit::circuit::Gate;
use chimera_circuit::gates;
use chimera_circuit::layer::{Angle, Axis, Op};

/// Input i as the angle of a rotation about `axis` on qubit i, for each of `qubits` inputs.
pub fn angle_embedding(qubits: usize, axis: Axis) -> Vec<Op> {
    (0..qubits)
        .map(|q| Op::Rotation {
            qubit: q,
            axis,
            angle: Angle::Input(q),
        })
        .collect()
}

/// `layers` layers, each an RX by its own weight on every qubit and then a ring of CNOTs (none on
/// one qubit, one on two): weights `first_weight..first_weight + layers * qubits`.
pub fn basic_entangler_layers(qubits: usize, layers: usize, first_weight: usize) -> Vec<Op> {
    let mut ops = Vec::new();
    for layer in 0..layers {
        for q in 0..qubits {
            ops.push(Op::Rotation {
                qubit: q,
                axis: Axis::X,
                angle: Angle::Weight(first_weight + layer * qubits + q),
            });
        }
        ops.extend(cnot_ring(qubits));
    }
    ops
}

/// CNOTs from each qubit to the next, the last to the first: none on one qubit, one on two.
fn cnot_ring(qubits: usize) -> Vec<Op> {
    let ring = match qubits {
        1 => 0,
        2 => 1,
        n => n,
    };
    (0..ring)
        .map(|q| {
            let cnot = gates::controlled(&gates::x(), 1);
            Op::Fixed(Gate::new(vec![q, (q + 1) % qubits], cnot))
        })
        .collect()
}

/// `layers` layers, each a general rotation RZ·RY·RZ by three weights of its own on every qubit
/// and then a ring of CNOTs, qubit q controlling qubit q + 1 (mod n): weights
/// `first_weight..first_weight + 3 * layers * qubits`.
pub fn strongly_entangling_layers(qubits: usize, layers: usize, first_weight: usize) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut weight = first_weight;
    for _ in 0..layers {
        for q in 0..qubits {
            for axis in [Axis::Z, Axis::Y, Axis::Z] {
                ops.push(Op::Rotation {
                    qubit: q,
                    axis,
                    angle: Angle::Weight(weight),
                });
                weight += 1;
            }
        }
        ops.extend(cnot_ring(qubits));
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layers_use_each_weight_once_and_close_the_ring() {
        let ops = basic_entangler_layers(3, 2, 0);
        let weights: Vec<usize> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Rotation {
                    angle: Angle::Weight(w),
                    ..
                } => Some(*w),
                _ => None,
            })
            .collect();
        assert_eq!(weights, (0..6).collect::<Vec<_>>());
        let cnots: Vec<Vec<usize>> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Fixed(g) => Some(g.qubits.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(cnots[..3], [vec![0, 1], vec![1, 2], vec![2, 0]]);
        assert_eq!(basic_entangler_layers(2, 1, 0).len(), 3);
        assert_eq!(angle_embedding(2, Axis::Y).len(), 2);
    }
}
