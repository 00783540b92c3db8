//! Cache blocking: a gate sequence split into blocks, each acting within a set of at most
//! `max_qubits` qubits. A backend applies a whole block to each slice of the state that the block's
//! qubits span while that slice sits in cache (CPU) or shared memory (GPU): one read and one write
//! of the state per block instead of one per gate.

use chimera_circuit::circuit::Gate;

#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// The qubits the block acts within, ascending.
    pub qubits: Vec<usize>,
    pub gates: Vec<Gate>,
}

/// Splits `gates` into blocks of at most `max_qubits` qubits, each including `always` (the low
/// qubits that make a slice contiguous in memory). A gate may move ahead of gates it commutes with:
/// gates on other qubits, and, when it is diagonal, other diagonal gates.
pub fn plan(gates: &[Gate], max_qubits: usize, always: &[usize]) -> Vec<Block> {
    let num_qubits = gates
        .iter()
        .flat_map(|g| g.qubits.iter())
        .chain(always)
        .max()
        .map_or(0, |m| m + 1);
    let diagonal: Vec<bool> = gates.iter().map(Gate::is_diagonal).collect();
    let mut done = vec![false; gates.len()];
    let mut first_pending = 0;
    let mut blocks = Vec::new();
    while first_pending < gates.len() {
        let mut qubits: Vec<usize> = always.to_vec();
        let mut members = Vec::new();
        // What the gates skipped so far forbid on each qubit.
        let mut blocked = vec![Blocked::No; num_qubits];
        let mut blocked_for_all = 0;
        for (i, g) in gates.iter().enumerate().skip(first_pending) {
            if done[i] {
                continue;
            }
            let stuck = g.qubits.iter().any(|&q| match blocked[q] {
                Blocked::No => false,
                Blocked::NonDiagonal => !diagonal[i],
                Blocked::All => true,
            });
            let new: Vec<usize> = g
                .qubits
                .iter()
                .copied()
                .filter(|q| !qubits.contains(q))
                .collect();
            // The first gate always starts the block, even one wider than the limit.
            if !stuck && (members.is_empty() || qubits.len() + new.len() <= max_qubits) {
                qubits.extend(new);
                members.push(i);
                done[i] = true;
                continue;
            }
            // A skipped diagonal gate holds back only non-diagonal gates on its qubits.
            let level = if diagonal[i] {
                Blocked::NonDiagonal
            } else {
                Blocked::All
            };
            for &q in &g.qubits {
                if blocked[q] < level {
                    blocked_for_all += (level == Blocked::All) as usize;
                    blocked[q] = level;
                }
            }
            if blocked_for_all == num_qubits {
                break;
            }
        }
        while first_pending < gates.len() && done[first_pending] {
            first_pending += 1;
        }
        qubits.sort_unstable();
        blocks.push(Block {
            qubits,
            gates: members.into_iter().map(|i| gates[i].clone()).collect(),
        });
    }
    blocks
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Blocked {
    No,
    /// A skipped diagonal gate acts here: diagonal gates may still pass it.
    NonDiagonal,
    /// A skipped non-diagonal gate acts here: nothing may pass it.
    All,
}
