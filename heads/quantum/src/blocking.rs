//! Cache blocking: a gate sequence split into blocks, each acting within a set of at most
//! `max_qubits` qubits. A backend applies a whole block to each slice of the state that the block's
//! qubits span while that slice sits in cache (CPU) or shared memory (GPU): one read and one write
//! of the state per block instead of one per gate.

use crate::circuit::Gate;

#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// The qubits the block acts within, ascending.
    pub qubits: Vec<usize>,
    pub gates: Vec<Gate>,
}

/// Splits `gates` into blocks of at most `max_qubits` qubits, each including `always` (the low
/// qubits that make a slice contiguous in memory). Gates may move ahead of gates they commute with
/// trivially (disjoint qubits), never past one they share a qubit with.
pub fn plan(gates: &[Gate], max_qubits: usize, always: &[usize]) -> Vec<Block> {
    let num_qubits = gates
        .iter()
        .flat_map(|g| g.qubits.iter())
        .max()
        .map_or(0, |m| m + 1);
    let mut done = vec![false; gates.len()];
    let mut first_pending = 0;
    let mut blocks = Vec::new();
    while first_pending < gates.len() {
        let mut qubits: Vec<usize> = always.to_vec();
        let mut members = Vec::new();
        // Qubits some skipped gate acts on: nothing after it on those qubits may join this block.
        let mut blocked = vec![false; num_qubits];
        let mut blocked_count = 0;
        for (i, g) in gates.iter().enumerate().skip(first_pending) {
            if done[i] {
                continue;
            }
            if g.qubits.iter().any(|&q| blocked[q]) {
                block(&mut blocked, &mut blocked_count, &g.qubits);
                continue;
            }
            let new: Vec<usize> = g
                .qubits
                .iter()
                .copied()
                .filter(|q| !qubits.contains(q))
                .collect();
            // The first gate always starts the block, even one wider than the limit.
            if members.is_empty() || qubits.len() + new.len() <= max_qubits {
                qubits.extend(new);
                members.push(i);
                done[i] = true;
            } else {
                block(&mut blocked, &mut blocked_count, &g.qubits);
            }
            if blocked_count == num_qubits {
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

fn block(blocked: &mut [bool], count: &mut usize, qubits: &[usize]) {
    for &q in qubits {
        if !blocked[q] {
            blocked[q] = true;
            *count += 1;
        }
    }
}
