"""``ChimeraBackend``: CHIMERA as a Qiskit ``BackendV2``, so that ``transpile``, ``backend.run``
and ``BackendSamplerV2`` work. An ideal simulator: every standard gate, ``unitary``, measure,
reset and ``if_else`` on every qubit pair; qubits a circuit never touches (transpiling to a wide
target adds them) are not simulated."""

from __future__ import annotations

import uuid

import numpy as np
from qiskit.circuit import IfElseOp, QuantumCircuit
from qiskit.circuit.library import UnitaryGate, get_standard_gate_name_mapping
from qiskit.providers import BackendV2, JobStatus, JobV1, Options
from qiskit.result import Result
from qiskit.transpiler import Target

from .. import __version__
from ..simulator import Simulator
from .circuits import from_qiskit, register_values, registers, shot_order

#: The width of the backend's target unless given: more than any state this machine holds.
DEFAULT_NUM_QUBITS = 40


class ChimeraBackend(BackendV2):
    """CHIMERA's statevector simulator as a ``BackendV2``. ``run`` takes ``shots`` (1024),
    ``memory`` (per-shot results, as ``BackendSamplerV2`` asks) and ``seed_simulator``."""

    def __init__(self, *, num_qubits=DEFAULT_NUM_QUBITS, seed=None, precision="double", threads=None, backend="auto"):
        super().__init__(name="chimera", backend_version=__version__, description="CHIMERA statevector simulator")
        self._settings = (precision, threads, backend)
        self._simulator = Simulator(precision, threads, backend, seed)
        target = Target.from_configuration(
            basis_gates=list(get_standard_gate_name_mapping()), num_qubits=num_qubits
        )
        target.add_instruction(IfElseOp, name="if_else")
        target.add_instruction(UnitaryGate, name="unitary")
        self._target = target

    @property
    def target(self) -> Target:
        return self._target

    @property
    def max_circuits(self):
        return None

    @classmethod
    def _default_options(cls) -> Options:
        return Options(shots=1024, memory=False, seed_simulator=None)

    def run(self, run_input, **options):
        circuits = [run_input] if isinstance(run_input, QuantumCircuit) else list(run_input)
        unknown = set(options) - {"shots", "memory", "seed_simulator"}
        if unknown:
            raise ValueError(f"ChimeraBackend.run takes shots, memory and seed_simulator, not {sorted(unknown)}")
        shots = int(options.get("shots", self.options.shots))
        memory = bool(options.get("memory", self.options.memory))
        seed = options.get("seed_simulator", self.options.seed_simulator)
        simulator = self._simulator if seed is None else Simulator(*self._settings, seed=int(seed))
        rng = np.random.default_rng(seed)
        job_id = str(uuid.uuid4())
        results = [_experiment(simulator, qc, shots, memory, rng) for qc in circuits]
        result = Result.from_dict(
            {
                "backend_name": self.name,
                "backend_version": self.backend_version,
                "job_id": job_id,
                "qobj_id": job_id,
                "success": True,
                "results": results,
            }
        )
        return ChimeraJob(self, job_id, result)


def _experiment(simulator, qc: QuantumCircuit, shots: int, memory: bool, rng) -> dict:
    regs = registers(qc)
    counts = simulator.sample(from_qiskit(qc, compact=True), shots) if qc.num_clbits else {}
    # Each key as the integer whose bit c is clbit c.
    values = [
        hex(sum(v << start for v, (_, start, _) in zip(register_values(key, regs), regs))) for key in counts
    ]
    data = {"counts": dict(zip(values, counts.values()))}
    if memory:
        data["memory"] = [values[i] for i in shot_order(counts, rng)]
    return {
        "shots": shots,
        "success": True,
        "status": "DONE",
        "data": data,
        "header": {
            "name": qc.name,
            "creg_sizes": [[name, size] for name, _, size in regs],
            "memory_slots": qc.num_clbits,
            "n_qubits": qc.num_qubits,
            "metadata": qc.metadata,
        },
    }


class ChimeraJob(JobV1):
    """A finished run: ``ChimeraBackend.run`` simulates before it returns."""

    def __init__(self, backend, job_id, result):
        super().__init__(backend, job_id)
        self._result = result

    def submit(self):
        """Already run."""

    def result(self):
        return self._result

    def status(self):
        return JobStatus.DONE
