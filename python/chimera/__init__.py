"""CHIMERA from Python.

``chimera.Simulator`` runs OpenQASM 2 text, a ``qiskit.QuantumCircuit`` or a PennyLane tape
in-process; ``chimera.qiskit`` holds Qiskit primitives, ``chimera.pennylane`` the
``chimera.qubit`` device. ``keygen``, ``sign`` and ``verify`` sign MAML jobs with the engine's
own ML-DSA-65 code, and ``Client`` submits them to an engine over gRPC. Qubit q is bit q of a
basis state's index throughout (Qiskit's order).
"""

from ._native import Circuit
from .client import Client, Refused
from .signing import keygen, sign, verify
from .simulator import Simulator

__all__ = ["Circuit", "Client", "Refused", "Simulator", "keygen", "sign", "verify"]
__version__ = "0.1.0"
