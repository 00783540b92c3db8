//! The structure the GPU kernels exploit: control qubits split off a gate, phased permutations.

mod common;

use chimera_circuit::bits::{deposit, extract};
use chimera_circuit::circuit::{C64, Controlled, Gate};
use chimera_circuit::gates;

/// The full matrix of a split gate, on `qubits` (bit j of an index is `qubits[j]`).
fn rebuild(split: &Controlled, qubits: &[usize]) -> Vec<C64> {
    let d = 1 << qubits.len();
    let bits_of = |set: &[usize]| -> Vec<usize> {
        set.iter()
            .map(|q| qubits.iter().position(|p| p == q).unwrap())
            .collect()
    };
    let (controls, targets) = (bits_of(&split.controls), bits_of(&split.gate.qubits));
    let all_controls = (1 << controls.len()) - 1;
    let dg = split.gate.dim();
    (0..d * d)
        .map(|i| {
            let (r, c) = (i / d, i % d);
            let others =
                |x: usize| x & !deposit(all_controls, &controls) & !deposit(dg - 1, &targets);
            let on = |x: usize| extract(x, &controls) == all_controls;
            if on(r) && on(c) && others(r) == others(c) {
                split.gate.matrix[extract(r, &targets) * dg + extract(c, &targets)]
            } else if r == c {
                C64::new(1.0, 0.0)
            } else {
                C64::new(0.0, 0.0)
            }
        })
        .collect()
}

#[test]
fn cx_and_ccx_split_into_controls_and_an_x() {
    let cx = Gate::new(vec![2, 5], gates::controlled(&gates::x(), 1));
    let split = cx.split_controls();
    assert_eq!(split.controls, vec![2]);
    assert_eq!(split.gate, Gate::new(vec![5], gates::x()));
    let ccx = Gate::new(vec![4, 1, 0], gates::controlled(&gates::x(), 2));
    let split = ccx.split_controls();
    assert_eq!(split.controls, vec![1, 4]);
    assert_eq!(split.gate, Gate::new(vec![0], gates::x()));
    assert_eq!(
        split.gate.phased_permutation(),
        Some(vec![(1, C64::new(1.0, 0.0)), (0, C64::new(1.0, 0.0))])
    );
}

#[test]
fn gates_without_controls_stay_whole() {
    for (qubits, matrix) in [
        (vec![3], gates::h()),
        (vec![0, 1], gates::swap()),
        (vec![6, 2], gates::rxx(0.4)),
    ] {
        let gate = Gate::new(qubits, matrix);
        let split = gate.split_controls();
        assert!(split.controls.is_empty(), "{gate:?}");
        assert_eq!(split.gate, gate);
    }
}

#[test]
fn a_controlled_phase_keeps_one_target() {
    let cp = Gate::new(vec![0, 1], gates::controlled(&gates::phase(0.3), 1));
    let split = cp.split_controls();
    assert_eq!(split.controls, vec![0]);
    assert_eq!(split.gate.qubits, vec![1]);
    assert_eq!(rebuild(&split, &[0, 1]), cp.matrix);
}

#[test]
fn split_gates_rebuild_the_original_matrix() {
    let mut rng = common::XorShift(0x5EED);
    let mut with_controls = 0;
    for _ in 0..300 {
        let gate = common::random_gate(&mut rng, 6);
        let split = gate.split_controls();
        assert_eq!(rebuild(&split, &gate.qubits), gate.matrix, "{gate:?}");
        with_controls += usize::from(!split.controls.is_empty());
    }
    assert!(
        with_controls > 30,
        "only {with_controls} gates had controls"
    );
    // A controlled dense unitary with two controls, qubits out of order.
    let u = Gate::new(vec![9], gates::u(0.3, 0.2, 0.1));
    let gate = Gate::new(vec![3, 7, 9], gates::controlled(&u.matrix, 2));
    let split = gate.split_controls();
    assert_eq!(split.controls, vec![3, 7]);
    assert_eq!(split.gate, u);
}

#[test]
fn phased_permutations_are_recognised_and_others_refused() {
    let swap = Gate::new(vec![0, 1], gates::swap());
    let perm = swap.phased_permutation().unwrap();
    assert_eq!(
        perm.iter().map(|&(c, _)| c).collect::<Vec<_>>(),
        vec![0, 2, 1, 3]
    );
    let y = Gate::new(vec![0], gates::y()).phased_permutation().unwrap();
    assert_eq!(y, vec![(1, C64::new(0.0, -1.0)), (0, C64::new(0.0, 1.0))]);
    assert_eq!(Gate::new(vec![0], gates::h()).phased_permutation(), None);
    // Two entries in one column is not a permutation, even with one entry per row.
    let collapse = Gate::new(
        vec![0],
        vec![
            C64::new(1.0, 0.0),
            C64::new(0.0, 0.0),
            C64::new(1.0, 0.0),
            C64::new(0.0, 0.0),
        ],
    );
    assert_eq!(collapse.phased_permutation(), None);
}
