//! Gate fusion: consecutive gates merged into dense unitaries on at most `max_qubits` qubits, so
//! that one pass over the state does the work of many gates. Knows nothing of the hardware beyond
//! that one number.

use crate::circuit::{C64, Gate};

/// Fuses `gates` (applied in order) into fewer gates with the same product. Every output gate has
/// its qubits in ascending order; a gate wider than `max_qubits` passes through on its own.
pub fn fuse(gates: &[Gate], max_qubits: usize) -> Vec<Gate> {
    struct Group {
        qubits: Vec<usize>,
        members: Vec<usize>,
    }
    let mut groups: Vec<Group> = Vec::new();
    // The group that last acted on each qubit.
    let mut last: Vec<Option<usize>> = Vec::new();
    for (i, g) in gates.iter().enumerate() {
        if let Some(&m) = g.qubits.iter().max()
            && last.len() <= m
        {
            last.resize(m + 1, None);
        }
        // A gate may join the latest group touching any of its qubits: every later group is
        // disjoint from it, so it commutes past them.
        let target = g.qubits.iter().filter_map(|&q| last[q]).max();
        let joined = target.filter(|&t| {
            let mut union = groups[t].qubits.clone();
            union.extend(g.qubits.iter().filter(|q| !groups[t].qubits.contains(q)));
            union.len() <= max_qubits
        });
        let idx = match joined {
            Some(t) => {
                let group = &mut groups[t];
                for &q in &g.qubits {
                    if !group.qubits.contains(&q) {
                        group.qubits.push(q);
                    }
                }
                group.members.push(i);
                t
            }
            None => {
                groups.push(Group {
                    qubits: g.qubits.clone(),
                    members: vec![i],
                });
                groups.len() - 1
            }
        };
        for &q in &g.qubits {
            last[q] = Some(idx);
        }
    }
    groups
        .into_iter()
        .map(|group| {
            if let [only] = group.members[..] {
                return gates[only].sorted();
            }
            let mut qubits = group.qubits;
            qubits.sort_unstable();
            let d = 1usize << qubits.len();
            let mut matrix: Vec<C64> = (0..d * d)
                .map(|i| {
                    if i / d == i % d {
                        C64::new(1.0, 0.0)
                    } else {
                        C64::new(0.0, 0.0)
                    }
                })
                .collect();
            for &m in &group.members {
                left_multiply(&mut matrix, &qubits, &gates[m]);
            }
            Gate::new(qubits, matrix)
        })
        .collect()
}

/// `matrix` (over `qubits`) becomes `gate * matrix`: the gate applied to every column.
fn left_multiply(matrix: &mut [C64], qubits: &[usize], gate: &Gate) {
    let d = 1usize << qubits.len();
    let positions: Vec<usize> = gate
        .qubits
        .iter()
        .map(|q| {
            qubits
                .iter()
                .position(|u| u == q)
                .expect("gate qubit in group")
        })
        .collect();
    let gd = gate.dim();
    let offsets: Vec<usize> = (0..gd)
        .map(|c| {
            positions
                .iter()
                .enumerate()
                .fold(0, |acc, (j, &p)| acc | (((c >> j) & 1) << p))
        })
        .collect();
    let mask: usize = offsets[gd - 1];
    let mut x = vec![C64::new(0.0, 0.0); gd];
    for col in 0..d {
        for base in (0..d).filter(|b| b & mask == 0) {
            for (c, &o) in offsets.iter().enumerate() {
                x[c] = matrix[(base | o) * d + col];
            }
            for (r, &o) in offsets.iter().enumerate() {
                matrix[(base | o) * d + col] =
                    (0..gd).map(|c| gate.matrix[r * gd + c] * x[c]).sum();
            }
        }
    }
}
