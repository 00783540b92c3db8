//! Gate fusion: consecutive gates merged into dense unitaries on at most `max_qubits` qubits, so
//! that one pass over the state does the work of many gates. Knows nothing of the hardware beyond
//! that one number.

use chimera_circuit::bits::{deposit, extract};
use chimera_circuit::circuit::{C64, Gate};
use chimera_circuit::gates;

/// Fuses `gates` (applied in order) into fewer gates with the same product. Dense groups span at
/// most `max_qubits` qubits; runs of diagonal gates, which commute with one another and stay cheap
/// to apply however wide, gather into diagonal groups of up to `max_diagonal_qubits`. Every output
/// gate has its qubits in ascending order; a gate wider than the limits passes through on its own.
pub fn fuse(gates: &[Gate], max_qubits: usize, max_diagonal_qubits: usize) -> Vec<Gate> {
    let mut fusion = Fusion::new(gates, max_qubits, max_diagonal_qubits);
    for (i, gate) in gates.iter().enumerate() {
        fusion.add(i, gate);
    }
    fusion.into_gates()
}

/// Gates that become one: the qubits they span, and their indices in order.
struct Group {
    qubits: Vec<usize>,
    members: Vec<usize>,
    diagonal: bool,
}

impl Group {
    fn union_len(&self, qubits: &[usize]) -> usize {
        self.qubits.len() + qubits.iter().filter(|q| !self.qubits.contains(q)).count()
    }

    fn take_in(&mut self, qubits: &[usize]) {
        for &q in qubits {
            if !self.qubits.contains(&q) {
                self.qubits.push(q);
            }
        }
    }
}

/// The groups so far, and where a next gate may join them.
struct Fusion<'a> {
    gates: &'a [Gate],
    max_qubits: usize,
    max_diagonal_qubits: usize,
    groups: Vec<Group>,
    /// Per qubit: the latest group acting on it, and the latest non-diagonal one.
    last: Vec<Option<usize>>,
    last_dense: Vec<Option<usize>>,
    /// The latest diagonal group, which a diagonal gate may join past later diagonal groups.
    open_diagonal: Option<usize>,
}

impl<'a> Fusion<'a> {
    fn new(gates: &'a [Gate], max_qubits: usize, max_diagonal_qubits: usize) -> Self {
        let width = gates
            .iter()
            .flat_map(|g| g.qubits.iter())
            .max()
            .map_or(0, |m| m + 1);
        Self {
            gates,
            max_qubits,
            max_diagonal_qubits,
            groups: Vec::new(),
            last: vec![None; width],
            last_dense: vec![None; width],
            open_diagonal: None,
        }
    }

    fn limit(&self, diagonal: bool) -> usize {
        match diagonal {
            true => self.max_diagonal_qubits,
            false => self.max_qubits,
        }
    }

    /// Adds gate `i`, `g`: into a group it may join, or a group of its own.
    fn add(&mut self, i: usize, g: &Gate) {
        let diagonal = g.is_diagonal();
        let into_diagonal = self.open_diagonal.filter(|&d| {
            diagonal
                && g.qubits
                    .iter()
                    .all(|&q| self.last_dense[q].is_none_or(|x| x < d))
                && self.groups[d].union_len(&g.qubits) <= self.max_diagonal_qubits
        });
        // Otherwise a gate may join the latest group acting on any of its qubits: every later
        // group is disjoint from it, so it commutes past them.
        let joined = into_diagonal.or_else(|| {
            let latest = g.qubits.iter().filter_map(|&q| self.last[q]).max();
            latest.filter(|&t| {
                let limit = self.limit(diagonal && self.groups[t].diagonal);
                self.groups[t].union_len(&g.qubits) <= limit
            })
        });
        let idx = match joined {
            Some(t) => {
                if into_diagonal.is_none() {
                    self.absorb_open_groups(t, g, diagonal);
                }
                let group = &mut self.groups[t];
                group.take_in(&g.qubits);
                group.members.push(i);
                group.diagonal &= diagonal;
                t
            }
            None => {
                self.groups.push(Group {
                    qubits: g.qubits.clone(),
                    members: vec![i],
                    diagonal,
                });
                self.groups.len() - 1
            }
        };
        self.record(idx, &g.qubits);
    }

    /// Absorbs into group `t` the groups still open on `g`'s other qubits (every one of their
    /// qubits last touched by them, so disjoint from `t` and from all later groups):
    /// `h a; h b; cx a, b;` becomes one gate instead of two.
    fn absorb_open_groups(&mut self, t: usize, g: &Gate, diagonal: bool) {
        for &q in &g.qubits {
            let Some(o) = self.last[q].filter(|&o| o != t) else {
                continue;
            };
            let open = self.groups[o]
                .qubits
                .iter()
                .all(|&u| self.last[u] == Some(o));
            let diagonal_after = self.groups[t].diagonal && self.groups[o].diagonal && diagonal;
            let others = self.groups[o]
                .qubits
                .iter()
                .filter(|u| !g.qubits.contains(u));
            let width = self.groups[t].union_len(&g.qubits) + others.count();
            if !open || width > self.limit(diagonal_after) {
                continue;
            }
            let absorbed = std::mem::take(&mut self.groups[o].members);
            let absorbed_qubits = std::mem::take(&mut self.groups[o].qubits);
            let absorbed_diagonal = self.groups[o].diagonal;
            let group = &mut self.groups[t];
            group.members.splice(0..0, absorbed);
            group.take_in(&absorbed_qubits);
            for u in absorbed_qubits {
                self.last[u] = Some(t);
            }
            group.diagonal &= absorbed_diagonal;
            if self.open_diagonal == Some(o) {
                self.open_diagonal = None;
            }
        }
    }

    /// Group `idx` took a gate on `qubits`: where later gates may join.
    fn record(&mut self, idx: usize, qubits: &[usize]) {
        // A gate that joined an older group must not hide the later groups on its qubits.
        for &q in qubits {
            self.last[q] = self.last[q].max(Some(idx));
        }
        if self.groups[idx].diagonal {
            self.open_diagonal = Some(idx);
            return;
        }
        for &q in &self.groups[idx].qubits {
            self.last_dense[q] = self.last_dense[q].max(Some(idx));
        }
        if self.open_diagonal == Some(idx) {
            self.open_diagonal = None;
        }
    }

    /// Each group as one gate, in order.
    fn into_gates(self) -> Vec<Gate> {
        let gates = self.gates;
        self.groups
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
