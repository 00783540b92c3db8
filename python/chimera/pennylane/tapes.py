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
from ..simulator import pauli_terms

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
        yield gate(op, matrix(op), num_wires)


def matrix(op):
    """``op``'s matrix in its own wire order. PennyLane builds one through several layers of
    dispatch, which for a circuit of small states costs more than simulating it: the rotations
    are written out here, and matrices without parameters are kept."""
    if not op.wires:
        return qml.matrix(op, wire_order=[0])
    rotation = _ROTATIONS.get(op.name)
    if rotation is not None:
        return rotation(float(op.data[0]))
    if op.num_params:
        return op.matrix()
    key = (_kind(op), len(op.wires))
    kept = _fixed.get(key)
    if kept is None:
        kept = _fixed.setdefault(key, np.ascontiguousarray(qml.math.toarray(op.matrix()), dtype=np.complex128))
    return kept


def _kind(op) -> tuple:
    """What, besides its wires and angles, makes an operation's matrix: its name and
    hyperparameters."""
    return op.name, repr(sorted(op.hyperparameters.items(), key=str))


def _rx(t):
    c, s = np.cos(t / 2), np.sin(t / 2)
    return np.array([[c, -1j * s], [-1j * s, c]])


def _ry(t):
    c, s = np.cos(t / 2), np.sin(t / 2)
    return np.array([[c, -s], [s, c]], dtype=np.complex128)


def _rz(t):
    return np.diag([np.exp(-0.5j * t), np.exp(0.5j * t)])


def _phase(t):
    return np.diag([1.0, np.exp(1j * t)])


#: Rotations by their one parameter, as PennyLane defines them.
_ROTATIONS = {"RX": _rx, "RY": _ry, "RZ": _rz, "PhaseShift": _phase}

#: Matrices of operations without parameters, by name, width and hyperparameters.
_fixed: dict = {}


def gate(op, matrix, num_wires: int):
    """``matrix`` (in ``op``'s wire order) on the qubits of ``op``'s wires."""
    wires = list(op.wires) or [0]
    qubits = [max(num_wires, 1) - 1 - w for w in reversed(wires)]
    return qubits, np.ascontiguousarray(qml.math.toarray(matrix), dtype=np.complex128)


def accepts(op) -> bool:
    """Whether the device runs ``op`` as it is (anything else is decomposed first)."""
    return isinstance(op, qml.Snapshot) or (op.has_matrix and len(op.wires) <= MAX_GATE_WIRES)


def derivative(op, num_wires: int):
    """dU/dθ of a one-parameter operation: its generator G (U = exp(iθG)) as Pauli-sum text when
    G is a Pauli sum, read by the native adjoint without a matrix; dU/dθ as a matrix otherwise."""
    key = (_kind(op), tuple(op.wires), num_wires)
    text = _generators.get(key)
    if text is None:
        text = _generators.setdefault(key, _generator_text(op, num_wires))
    if text:
        return text
    return gate(op, qml.operation.operation_derivative(op), num_wires)[1]


#: Generators by operation name, wires and hyperparameters ("" when not a Pauli sum): they do not
#: depend on the angle, and reading one off PennyLane costs more than a gate's simulation.
_generators: dict = {}


def _generator_text(op, num_wires: int) -> str:
    try:
        sentence = op.generator().pauli_rep
    except Exception:  # no generator PennyLane can give
        sentence = None
    return "" if sentence is None else _sentence_text(sentence, num_wires)


def pauli_text(observable, num_wires: int) -> str:
    """An observable as Pauli-sum text on the IR's qubits (a matrix observable decomposed into
    Pauli words first)."""
    sentence = observable.pauli_rep
    if sentence is None:
        sentence = qml.pauli_decompose(
            qml.matrix(observable), wire_order=observable.wires, pauli=True
        )
    return _sentence_text(sentence, num_wires)


def _sentence_text(sentence, num_wires: int) -> str:
    """A PennyLane ``PauliSentence`` as Pauli-sum text, wire w being qubit num_wires-1-w."""
    return pauli_terms(
        (coeff, [(p, num_wires - 1 - w) for w, p in word.items()]) for word, coeff in sentence.items()
    )
