"""CHIMERA from Python: the engine's statevector simulator in-process.

``chimera.Simulator`` runs OpenQASM 2 text, a ``qiskit.QuantumCircuit`` or a PennyLane tape;
``chimera.qiskit`` holds Qiskit primitives and a backend, ``chimera.pennylane`` the
``chimera.qubit`` device; ``keygen``, ``sign`` and ``verify`` sign MAML jobs
with the engine's own ML-DSA-65 code. Qubit q is bit q of a basis state's index throughout (Qiskit's order).
"""

from ._native import Circuit
from .signing import keygen, sign, verify
from .simulator import Simulator

__all__ = ["Circuit", "Simulator", "keygen", "sign", "verify"]
__version__ = "0.1.0"
