"""PennyLane operations straight into the native IR.

PennyLane orders a state with its first wire most significant; the IR has qubit q as bit q. Wire
w of an n-wire tape (wires 0..n-1) is therefore qubit n-1-w, and a gate's matrix, written with its
first wire most significant, acts on its wires' qubits in reverse order: the amplitudes come out
in PennyLane's order with no reshuffle.
"""

from __future__ import annotations

import numpy as np
import pennylane as qml

from .. import _native

#: The widest operation handed over as one matrix (the native module's own limit).
MAX_GATE_WIRES = 12


def from_tape(tape, num_wires: int) -> _native.Circuit:
    """The operations of ``tape`` (wires 0..num_wires-1, no measurements mid-circuit)."""
    ops = [("gate", qubits, matrix, None, None) for qubits, matrix in gates(tape.operations, num_wires)]
    return _native.Circuit(max(num_wires, 1), 0, ops)


def gates(operations, num_wires: int):
    """(qubits, matrix) for each operation that acts (snapshots leave no gate)."""
    for op in operations:
        if isinstance(op, qml.Snapshot):
            continue
        yield gate(op, op.matrix() if op.wires else qml.matrix(op, wire_order=[0]), num_wires)


def gate(op, matrix, num_wires: int):
    """``matrix`` (in ``op``'s wire order) on the qubits of ``op``'s wires."""
    wires = list(op.wires) or [0]
    qubits = [max(num_wires, 1) - 1 - w for w in reversed(wires)]
    return qubits, np.ascontiguousarray(qml.math.toarray(matrix), dtype=np.complex128)


def accepts(op) -> bool:
    """Whether the device runs ``op`` as it is (anything else is decomposed first)."""
    return isinstance(op, qml.Snapshot) or (op.has_matrix and len(op.wires) <= MAX_GATE_WIRES)


def pauli_text(observable, num_wires: int) -> str:
    """An observable as Pauli-sum text on the IR's qubits (a matrix observable decomposed into
    Pauli words first)."""
    from ..simulator import pauli_terms

    sentence = observable.pauli_rep
    if sentence is None:
        sentence = qml.pauli_decompose(
            qml.matrix(observable), wire_order=observable.wires, pauli=True
        )
    return pauli_terms(
        (coeff, [(p, num_wires - 1 - w) for w, p in word.items()]) for word, coeff in sentence.items()
    )
