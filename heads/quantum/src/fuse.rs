//! Gate fusion: consecutive gates merged into dense unitaries on at most `max_qubits` qubits, so
//! that one pass over the state does the work of many gates. Knows nothing of the hardware beyond
//! that one number.

use crate::bits::{deposit, extract};
use crate::circuit::{C64, Gate};
use crate::gates;

/// Fuses `gates` (applied in order) into fewer gates with the same product. Dense groups span at
/// most `max_qubits` qubits; runs of diagonal gates, which commute with one another and stay cheap
/// to apply however wide, gather into diagonal groups of up to `max_diagonal_qubits`. Every output
/// gate has its qubits in ascending order; a gate wider than the limits passes through on its own.
pub fn fuse(gates: &[Gate], max_qubits: usize, max_diagonal_qubits: usize) -> Vec<Gate> {
    struct Group {
        qubits: Vec<usize>,
        members: Vec<usize>,
        diagonal: bool,
    }
    impl Group {
        fn union_len(&self, qubits: &[usize]) -> usize {
            self.qubits.len() + qubits.iter().filter(|q| !self.qubits.contains(q)).count()
        }
    }
    let mut groups: Vec<Group> = Vec::new();
    let width = gates
        .iter()
        .flat_map(|g| g.qubits.iter())
        .max()
        .map_or(0, |m| m + 1);
    // Per qubit: the latest group acting on it, and the latest non-diagonal one.
    let mut last: Vec<Option<usize>> = vec![None; width];
    let mut last_dense: Vec<Option<usize>> = vec![None; width];
    // The latest diagonal group, which a diagonal gate may join past later diagonal groups.
    let mut open_diagonal: Option<usize> = None;
    for (i, g) in gates.iter().enumerate() {
        let diagonal = g.is_diagonal();
        let into_diagonal = open_diagonal.filter(|&d| {
            diagonal
                && g.qubits
                    .iter()
                    .all(|&q| last_dense[q].is_none_or(|x| x < d))
                && groups[d].union_len(&g.qubits) <= max_diagonal_qubits
        });
        // Otherwise a gate may join the latest group acting on any of its qubits: every later
        // group is disjoint from it, so it commutes past them.
        let joined = into_diagonal.or_else(|| {
            g.qubits.iter().filter_map(|&q| last[q]).max().filter(|&t| {
                let limit = if diagonal && groups[t].diagonal {
                    max_diagonal_qubits
                } else {
                    max_qubits
                };
                groups[t].union_len(&g.qubits) <= limit
            })
        });
        let idx = match joined {
            Some(t) => {
                // Absorb the groups still open on the gate's other qubits (every one of their
                // qubits last touched by them, so disjoint from `t` and from all later groups):
                // `h a; h b; cx a, b;` becomes one gate instead of two.
                for &q in &g.qubits {
                    let Some(o) = last[q].filter(|&o| o != t && into_diagonal.is_none()) else {
                        continue;
                    };
                    let open = groups[o].qubits.iter().all(|&u| last[u] == Some(o));
                    let diagonal_after = groups[t].diagonal && groups[o].diagonal && diagonal;
                    let limit = if diagonal_after {
                        max_diagonal_qubits
                    } else {
                        max_qubits
                    };
                    let width = groups[t].union_len(&g.qubits)
                        + groups[o]
                            .qubits
                            .iter()
                            .filter(|u| !g.qubits.contains(u))
                            .count();
                    if !open || width > limit {
                        continue;
                    }
                    let absorbed = std::mem::take(&mut groups[o].members);
                    let absorbed_qubits = std::mem::take(&mut groups[o].qubits);
                    let absorbed_diagonal = groups[o].diagonal;
                    let group = &mut groups[t];
                    group.members.splice(0..0, absorbed);
                    for u in absorbed_qubits {
                        if !group.qubits.contains(&u) {
                            group.qubits.push(u);
                        }
                        last[u] = Some(t);
                    }
                    group.diagonal &= absorbed_diagonal;
                    if open_diagonal == Some(o) {
                        open_diagonal = None;
                    }
                }
                let group = &mut groups[t];
                for &q in &g.qubits {
                    if !group.qubits.contains(&q) {
                        group.qubits.push(q);
                    }
                }
                group.members.push(i);
                group.diagonal &= diagonal;
                t
            }
            None => {
                groups.push(Group {
                    qubits: g.qubits.clone(),
                    members: vec![i],
                    diagonal,
                });
                groups.len() - 1
            }
        };
        // A gate that joined an older group must not hide the later groups on its qubits.
        for &q in &g.qubits {
            last[q] = last[q].max(Some(idx));
        }
        if groups[idx].diagonal {
            open_diagonal = Some(idx);
        } else {
            for &q in &groups[idx].qubits {
                last_dense[q] = last_dense[q].max(Some(idx));
            }
            if open_diagonal == Some(idx) {
                open_diagonal = None;
            }
        }
    }
    groups
        .into_iter()
        .filter(|group| !group.members.is_empty())
        .map(|group| {
            if let [only] = group.members[..] {
                return gates[only].sorted();
            }
            let mut qubits = group.qubits;
            qubits.sort_unstable();
            let members = group.members.iter().map(|&m| &gates[m]);
            if group.diagonal {
                diagonal_product(qubits, members)
            } else {
                dense_product(qubits, members)
            }
        })
        .collect()
}

/// The product of diagonal gates, entry by entry: 2^k work per gate rather than 4^k.
fn diagonal_product<'a>(qubits: Vec<usize>, gates: impl Iterator<Item = &'a Gate>) -> Gate {
    let d = 1usize << qubits.len();
    let mut diagonal = vec![C64::new(1.0, 0.0); d];
    for gate in gates {
        let positions = positions_in(&qubits, gate);
        let gd = gate.dim();
        for (i, entry) in diagonal.iter_mut().enumerate() {
            let row = extract(i, &positions);
            *entry *= gate.matrix[row * (gd + 1)];
        }
    }
    let mut matrix = vec![C64::new(0.0, 0.0); d * d];
    for (i, entry) in diagonal.into_iter().enumerate() {
        matrix[i * (d + 1)] = entry;
    }
    Gate::new(qubits, matrix)
}

fn dense_product<'a>(qubits: Vec<usize>, gates: impl Iterator<Item = &'a Gate>) -> Gate {
    let mut matrix = gates::identity(qubits.len());
    for gate in gates {
        left_multiply(&mut matrix, &qubits, gate);
    }
    Gate::new(qubits, matrix)
}

/// Where each of the gate's qubits sits in the group's qubit list.
fn positions_in(qubits: &[usize], gate: &Gate) -> Vec<usize> {
    gate.qubits
        .iter()
        .map(|q| {
            qubits
                .iter()
                .position(|u| u == q)
                .expect("gate qubit in group")
        })
        .collect()
}

/// `matrix` (over `qubits`) becomes `gate * matrix`: the gate applied to every column.
fn left_multiply(matrix: &mut [C64], qubits: &[usize], gate: &Gate) {
    let d = 1usize << qubits.len();
    let positions = positions_in(qubits, gate);
    let gd = gate.dim();
    let offsets: Vec<usize> = (0..gd).map(|c| deposit(c, &positions)).collect();
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
