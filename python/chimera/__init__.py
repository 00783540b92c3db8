"""CHIMERA from Python: the engine's statevector simulator in-process.

``chimera.Simulator`` runs OpenQASM 2 text, a ``qiskit.QuantumCircuit`` or a PennyLane tape;
``chimera.qiskit`` holds Qiskit primitives and a backend, ``chimera.pennylane`` the
``chimera.qubit`` device. Qubit q is bit q of a basis state's index throughout (Qiskit's order).
"""

from ._native import Circuit
from .simulator import Simulator

__all__ = ["Circuit", "Simulator"]
__version__ = "0.1.0"
