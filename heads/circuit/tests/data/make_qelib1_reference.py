"""Writes qelib1_reference.json: the unitary Qiskit's OpenQASM 2 reader gives each qelib1.inc gate.

Run once with Qiskit installed (pip install qiskit numpy): python make_qelib1_reference.py
Matrix convention: Qiskit's, bit j of a row/column index is the gate's j-th qubit argument.
"""
import json

import numpy as np
from qiskit import qasm2
from qiskit.quantum_info import Operator

GATES = {  # name: (parameters, qubits)
    "u3": ([0.4, 0.5, 0.6], 1), "u2": ([0.2, 0.3], 1), "u1": ([0.1], 1), "u": ([0.7, 0.8, 0.9], 1),
    "p": ([0.25], 1), "id": ([], 1),
    "x": ([], 1), "y": ([], 1), "z": ([], 1), "h": ([], 1), "s": ([], 1), "sdg": ([], 1),
    "t": ([], 1), "tdg": ([], 1), "sx": ([], 1), "sxdg": ([], 1),
    "rx": ([1.1], 1), "ry": ([-0.7], 1), "rz": ([2.3], 1),
    "cx": ([], 2), "cz": ([], 2), "cy": ([], 2), "ch": ([], 2), "swap": ([], 2),
    "crx": ([0.3], 2), "cry": ([-0.4], 2), "crz": ([1.1], 2), "cu1": ([0.5], 2), "cp": ([-0.6], 2),
    "cu3": ([0.1, 0.2, 0.3], 2), "csx": ([], 2), "cu": ([0.4, 0.5, 0.6, 0.7], 2),
    "rxx": ([0.8], 2), "rzz": ([0.7], 2),
    "ccx": ([], 3), "cswap": ([], 3), "rccx": ([], 3),
    "rc3x": ([], 4), "c3x": ([], 4), "c3sqrtx": ([], 4), "c4x": ([], 5),
}

out = []
for name, (params, nq) in GATES.items():
    args = ",".join(f"q[{i}]" for i in range(nq))
    ps = "(" + ",".join(repr(p) for p in params) + ")" if params else ""
    src = f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[{nq}];\n{name}{ps} {args};\n'
    m = Operator(qasm2.loads(src, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)).data
    out.append({"name": name, "params": params, "qubits": nq,
                "re": np.real(m).ravel().tolist(), "im": np.imag(m).ravel().tolist()})
with open("qelib1_reference.json", "w") as f:
    json.dump(out, f)
