"""Qiskit circuits straight into the native IR, each gate as its matrix (Qiskit's own
``to_matrix``, little-endian in its qubit arguments as the IR is): no text in between."""

from __future__ import annotations

import numpy as np
from qiskit.circuit import (
    Barrier,
    ClassicalRegister,
    Clbit,
    Delay,
    Gate,
    IfElseOp,
    Measure,
    Parameter,
    ParameterExpression,
    QuantumCircuit,
    Reset,
)
from qiskit.exceptions import QiskitError
from qiskit.quantum_info import Operator

from .. import _native

#: The widest gate handed over as one matrix (the native module's own limit).
MAX_GATE_QUBITS = 12


def from_qiskit(qc: QuantumCircuit, compact: bool = False) -> _native.Circuit:
    """``qc`` (every parameter bound) as a native circuit, its classical registers kept; with
    ``compact``, the qubits no instruction touches left out (the others keep their order)."""
    if qc.parameters:
        names = ", ".join(p.name for p in qc.parameters)
        raise QiskitError(f"the circuit has unbound parameters ({names}): assign them first")
    if compact:
        used = sorted({qc.find_bit(q).index for instr in qc.data for q in instr.qubits} or {0})
        qubit_map = {q: i for i, q in enumerate(used)}
        num_qubits = len(used)
    else:
        qubit_map, num_qubits = {q: q for q in range(qc.num_qubits)}, qc.num_qubits
    ops = []
    _append(ops, qc, [qubit_map.get(qc.find_bit(q).index) for q in qc.qubits], [qc.find_bit(c).index for c in qc.clbits], None)
    return _native.Circuit(num_qubits, qc.num_clbits, ops, registers(qc))


def registers(qc: QuantumCircuit) -> list[tuple[str, int, int]]:
    """(name, first clbit, size) of each classical register; a register's bits must be
    consecutive clbits, as circuits built from registers have them."""
    out = []
    for reg in qc.cregs:
        indices = [qc.find_bit(c).index for c in reg]
        if indices and indices != list(range(indices[0], indices[0] + len(indices))):
            raise QiskitError(f"classical register {reg.name!r}: its bits are not consecutive clbits")
        out.append((reg.name, indices[0] if indices else 0, len(indices)))
    return [r for r in out if r[2] > 0]


def register_values(key: str, regs) -> list[int]:
    """A counts key (registers last-declared first, separated by spaces, as the simulator keys
    them) as each register's value, in declaration order."""
    parts = key.split(" ")
    return [int(parts[len(regs) - 1 - r], 2) for r in range(len(regs))]


def shot_order(counts: dict, rng) -> np.ndarray:
    """For each shot, in random order, the index of its key in ``list(counts)``: counts as the
    shots a per-shot result lists."""
    return rng.permutation(np.repeat(np.arange(len(counts)), list(counts.values())))


def _append(ops, qc, qubit_map, clbit_map, condition):
    for instr in qc.data:
        op = instr.operation
        qubits = [qubit_map[qc.find_bit(q).index] for q in instr.qubits]
        clbits = [clbit_map[qc.find_bit(c).index] for c in instr.clbits]
        if isinstance(op, (Barrier, Delay)):
            continue
        if isinstance(op, Measure):
            ops.append(("measure", qubits, None, clbits[0], condition))
        elif isinstance(op, Reset):
            ops.append(("reset", qubits, None, None, condition))
        elif isinstance(op, IfElseOp):
            _append_if(ops, qc, op, qubits, clbits, clbit_map, condition)
        elif isinstance(op, Gate):
            ops.append(("gate", *gate_on(op, qubits), None, condition))
        else:
            raise QiskitError(
                f"instruction {op.name!r} is not supported by chimera (gates, measure, reset, "
                "barrier, delay and if_test on a clbit or register are)"
            )


def _append_if(ops, qc, op, qubits, clbits, clbit_map, outer):
    if outer is not None:
        raise QiskitError("an if_test inside another if_test is not supported by chimera")
    target, value = op.condition if isinstance(op.condition, tuple) else (None, None)
    if isinstance(target, Clbit):
        start, size = clbit_map[qc.find_bit(target).index], 1
    elif isinstance(target, ClassicalRegister):
        indices = [clbit_map[qc.find_bit(c).index] for c in target]
        start, size = indices[0], len(indices)
        if indices != list(range(start, start + size)):
            raise QiskitError(f"if_test on register {target.name!r}: its bits are not consecutive")
    else:
        raise QiskitError(
            f"if_test on {op.condition!r}: chimera takes a condition on one clbit or one register"
        )
    true_body, false_body = op.blocks[0], (op.blocks[1] if len(op.blocks) > 1 else None)
    inner_q = lambda body: [qubits[body.find_bit(q).index] for q in body.qubits]  # noqa: E731
    inner_c = lambda body: [clbits[body.find_bit(c).index] for c in body.clbits]  # noqa: E731
    _append(ops, true_body, inner_q(true_body), inner_c(true_body), (start, size, int(value)))
    if false_body is not None:
        if size != 1:
            raise QiskitError("an else branch is supported on a one-clbit condition only")
        _append(ops, false_body, inner_q(false_body), inner_c(false_body), (start, 1, 1 - int(value)))


def gate_on(op: Gate, qubits: list[int]) -> tuple[list[int], np.ndarray]:
    """(qubits, matrix) for ``op`` on ``qubits``; a global phase (no qubits) goes on qubit 0."""
    if op.num_qubits > MAX_GATE_QUBITS:
        raise QiskitError(
            f"gate {op.name!r} acts on {op.num_qubits} qubits; chimera takes up to "
            f"{MAX_GATE_QUBITS} as one matrix: transpile or decompose it first"
        )
    matrix = gate_matrix(op)
    if not qubits:
        return [0], matrix[0, 0] * np.eye(2, dtype=np.complex128)
    return qubits, matrix


def gate_matrix(op: Gate) -> np.ndarray:
    try:
        matrix = op.to_matrix()
    except Exception:  # a gate with a definition but no matrix of its own
        try:
            matrix = Operator(op).data
        except Exception as e:
            raise QiskitError(f"gate {op.name!r} has no matrix chimera can use: {e}") from e
    return np.ascontiguousarray(matrix, dtype=np.complex128)


def differentiable(qc: QuantumCircuit, values):
    """The gates of ``qc`` with ``values`` for its parameters (in ``qc.parameters``' order), each
    with d(matrix)/dθ for every parameter it depends on: (gates, number of parameters)."""
    params = list(qc.parameters)
    values = np.asarray(values, dtype=float).reshape(-1)
    if len(values) != len(params):
        raise ValueError(f"the circuit has {len(params)} parameters but {len(values)} values were given")
    binding = dict(zip(params, values))
    gates = []
    for instr in qc.data:
        op = instr.operation
        if isinstance(op, Barrier):
            continue
        if not isinstance(op, Gate):
            raise QiskitError(f"instruction {op.name!r}: a circuit to differentiate holds gates only")
        qubits = [qc.find_bit(q).index for q in instr.qubits]
        depends = sorted(
            {params.index(p) for x in op.params if isinstance(x, ParameterExpression) for p in x.parameters}
        )
        at = lambda b: gate_on(bound(op, b), qubits)[1]  # noqa: E731
        derivatives = [
            (i, _derivative(lambda t, i=i: at({**binding, params[i]: t}), values[i])) for i in depends
        ]
        gates.append((gate_on(bound(op, binding), qubits)[0], at(binding), derivatives))
    return gates, len(params)


def bound(op: Gate, binding) -> Gate:
    """``op`` with every parameter expression evaluated at ``binding``."""
    if not any(isinstance(x, ParameterExpression) for x in op.params):
        return op
    op = op.copy()
    op.params = [
        float(x.bind({p: binding[p] for p in x.parameters}).numeric())
        if isinstance(x, ParameterExpression)
        else x
        for x in op.params
    ]
    return op


def _derivative(matrix_at, x: float, h: float = 1e-3) -> np.ndarray:
    """d(matrix)/dx by the five-point stencil: error h⁴/30 times the fifth derivative, under
    1e-12 for the trigonometric entries of rotation gates."""
    return (-matrix_at(x + 2 * h) + 8 * matrix_at(x + h) - 8 * matrix_at(x - h) + matrix_at(x - 2 * h)) / (12 * h)


def sweep_of(qc: QuantumCircuit, bindings):
    """:func:`sweep` over a PUB's ``bindings`` (a ``BindingsArray``), its points in the C order
    of their shape."""
    points = int(np.prod(bindings.shape, dtype=int))
    params = list(qc.parameters)
    table = bindings.as_array(params).reshape(points, -1) if params else np.zeros((points, 0))
    return sweep(qc, table)


def sweep(qc: QuantumCircuit, values: np.ndarray):
    """``qc`` as a native ``Template`` and its angle table for ``values`` (points × parameters, in
    ``qc.parameters``' order): each parameterised gate by its name, each of its angles a column;
    measurements and registers kept. ``None`` when a parameterised gate has no native name, or
    the circuit resets or branches (the caller binds point by point)."""
    params = list(qc.parameters)
    index = {p: i for i, p in enumerate(params)}
    ops, columns = [], []
    for instr in qc.data:
        op = instr.operation
        if isinstance(op, Barrier):
            continue
        qubits = [qc.find_bit(q).index for q in instr.qubits]
        if isinstance(op, Measure):
            ops.append((qubits, qc.find_bit(instr.clbits[0]).index))
        elif not isinstance(op, Gate):
            return None
        elif any(isinstance(x, ParameterExpression) for x in op.params):
            ops.append((qubits, (op.name, list(range(len(columns), len(columns) + len(op.params))))))
            columns.extend(op.params)
        else:
            ops.append(gate_on(op, qubits))
    try:
        template = _native.Template(qc.num_qubits, ops, len(columns), qc.num_clbits, registers(qc))
    except ValueError:
        return None
    table = np.empty((len(values), len(columns)))
    for c, x in enumerate(columns):
        if isinstance(x, Parameter):
            table[:, c] = values[:, index[x]]
        elif isinstance(x, ParameterExpression):
            # An expression of parameters: evaluated point by point.
            table[:, c] = [float(x.bind({p: row[index[p]] for p in x.parameters}).numeric()) for row in values]
        else:
            table[:, c] = float(x)
    return template, np.ascontiguousarray(table)
