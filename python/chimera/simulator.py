"""``chimera.Simulator``: circuits of any front end, one native simulator."""

from __future__ import annotations

import numpy as np

from . import _native


def native_circuit(circuit) -> _native.Circuit:
    """``circuit`` as the native simulator takes it: OpenQASM 2 text (OpenQASM 3 through Qiskit's
    reader), a ``qiskit.QuantumCircuit``, a PennyLane tape, or an already native circuit."""
    if isinstance(circuit, _native.Circuit):
        return circuit
    if isinstance(circuit, str):
        if circuit.lstrip().startswith("OPENQASM 3"):
            from qiskit import qasm3

            from .qiskit.circuits import from_qiskit

            return from_qiskit(qasm3.loads(circuit))
        return _native.Circuit.from_qasm(circuit)
    kind = type(circuit).__module__.split(".")[0]
    if kind == "qiskit":
        from .qiskit.circuits import from_qiskit

        return from_qiskit(circuit)
    if kind == "pennylane":
        from .pennylane.tapes import from_tape

        return from_tape(circuit.map_to_standard_wires(), len(circuit.wires))
    raise TypeError(
        f"a circuit is OpenQASM text, a qiskit.QuantumCircuit or a PennyLane tape, "
        f"not {type(circuit).__name__}"
    )


class Simulator:
    """CHIMERA's statevector simulator in this process.

    ``precision``: "double" or "single"; ``threads``: CPU threads (all cores when None);
    ``backend``: "auto" (a GPU when there is one), "cpu" or "cuda"; ``seed``: makes sampling
    repeatable. Every call releases the GIL while it simulates.
    """

    def __init__(self, precision="double", threads=None, backend="auto", seed=None):
        self._native = _native.Simulator(precision, threads, backend, seed)

    @property
    def backend(self) -> str:
        return self._native.backend

    @property
    def precision(self) -> str:
        return self._native.precision

    def statevector(self, circuit) -> np.ndarray:
        """The final state as a NumPy array (moved out of the simulator, not copied)."""
        return self._native.statevector(native_circuit(circuit))

    def sample(self, circuit, shots: int) -> dict[str, int]:
        """Outcome counts keyed as Qiskit keys them (registers last-declared first)."""
        return self._native.sample(native_circuit(circuit), shots)

    def expectation(self, circuit, observables) -> np.ndarray:
        """⟨O⟩ for each observable: Pauli-sum text ("Z0 Z1 + 0.5*X2"), or a Qiskit
        ``SparsePauliOp``/``Pauli``; one observable gives one value."""
        single = not isinstance(observables, (list, tuple))
        texts = [pauli_text(o) for o in ([observables] if single else observables)]
        values = np.array(self._native.expectation(native_circuit(circuit), texts))
        return values[0] if single else values

    def gradient(self, circuit, observable, parameters) -> tuple[float, np.ndarray]:
        """⟨O⟩ and its gradient by the adjoint method, for a ``qiskit.QuantumCircuit`` with
        ``Parameter``s bound to ``parameters`` (values in ``circuit.parameters``' order)."""
        from .qiskit.circuits import differentiable

        gates, count = differentiable(circuit, parameters)
        return self._native.gradient(circuit.num_qubits, gates, pauli_text(observable), count)

    def __repr__(self) -> str:
        return f"chimera.Simulator({self.precision}, {self.backend})"


def pauli_text(observable) -> str:
    """An observable as the native simulator reads it: text as is; a Qiskit ``SparsePauliOp`` or
    ``Pauli`` term by term (its label's last character is qubit 0)."""
    if isinstance(observable, str):
        return observable
    if type(observable).__module__.split(".")[0] == "qiskit":
        from qiskit.quantum_info import SparsePauliOp

        return labelled_terms(SparsePauliOp(observable).to_list())
    raise TypeError(f"an observable is Pauli-sum text or a qiskit SparsePauliOp, not {type(observable).__name__}")


def labelled_terms(items) -> str:
    """Pauli-sum text from (Qiskit Pauli label, coefficient) pairs: a label's last character is
    qubit 0."""
    return pauli_terms(
        (coeff, [(p, q) for q, p in enumerate(reversed(label)) if p != "I"]) for label, coeff in items
    )


def pauli_terms(terms) -> str:
    """Pauli-sum text from (coefficient, [(pauli letter, qubit)]) terms; a complex coefficient
    must be real (the observable Hermitian)."""
    parts = []
    for coeff, factors in terms:
        coeff = complex(coeff)
        if abs(coeff.imag) > 1e-12 * max(1.0, abs(coeff.real)):
            raise ValueError(f"the observable has a term with coefficient {coeff}: not Hermitian")
        word = " ".join(f"{p}{q}" for p, q in factors) or "I"
        parts.append(f"{coeff.real!r}*{word}")
    return " + ".join(parts).replace("+ -", "- ") if parts else "0"
