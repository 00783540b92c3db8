"""``chimera.qubit``: a PennyLane device on CHIMERA's statevector simulator.

Operations run as their matrices in the native simulator (the GIL released); measurements are
read off the final state by PennyLane's own measurement code, so every measurement PennyLane
defines (expval, var, probs, sample, counts, state) behaves as on ``default.qubit``. Gradients:
``diff_method="adjoint"`` (and ``"best"``, analytic) run the adjoint method natively.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pennylane as qml
from pennylane.devices import Device, ExecutionConfig
from pennylane.devices.default_qubit import adjoint_observables, adjoint_ops
from pennylane.devices.modifiers import simulator_tracking, single_tape_support
from pennylane.devices.preprocess import (
    decompose,
    no_sampling,
    validate_adjoint_trainable_params,
    validate_device_wires,
    validate_measurements,
    validate_observables,
)
from pennylane.devices.qubit.simulate import measure_final_state
from pennylane.exceptions import DecompositionUndefinedError, DeviceError
from pennylane.measurements import ExpectationMP
from pennylane.transforms import broadcast_expand, defer_measurements
from pennylane.transforms.core import CompilePipeline

from .. import _native
from .tapes import accepts, derivative, from_tape, gates, pauli_text

__all__ = ["ChimeraQubit"]


#: Operations the adjoint method takes as they are (no parameter, or one with a generator):
#: a circuit of these alone, measuring expectation values, needs no check beyond that.
_ADJOINT_READY = frozenset(
    {"RX", "RY", "RZ", "PhaseShift", "CNOT", "CZ", "CY", "SWAP", "Hadamard", "PauliX", "PauliY",
     "PauliZ", "S", "T", "SX", "Identity", "IsingXX", "IsingYY", "IsingZZ", "CRX", "CRY", "CRZ",
     "ControlledPhaseShift", "MultiRZ", "Toffoli"}
)


@simulator_tracking
@single_tape_support
class ChimeraQubit(Device):
    """CHIMERA's statevector simulator as a PennyLane device.

    Args:
        wires: the number of wires or their labels (None: as many as each circuit uses).
        shots: default shots (None: analytic).
        seed: makes sampling repeatable (an int, or None).
        precision: "double" or "single".
        threads: CPU threads (None: every core).
        backend: "auto", "cpu" or "cuda".
    """

    name = "chimera.qubit"
    config_filepath = Path(__file__).with_name("chimera_qubit.toml")

    def __init__(self, wires=None, shots=None, seed=None, precision="double", threads=None, backend="auto"):
        super().__init__(wires=wires, shots=shots)
        self._rng = np.random.default_rng(seed)
        native_seed = None if seed is None else int(self._rng.integers(2**63))
        self._simulator = _native.Simulator(precision, threads, backend, native_seed)

    def setup_execution_config(self, config: ExecutionConfig | None = None, circuit=None) -> ExecutionConfig:
        config = config or ExecutionConfig()
        method = "adjoint" if config.gradient_method == "best" else config.gradient_method
        updated = {"gradient_method": method, "convert_to_numpy": True}
        if config.use_device_gradient is None:
            updated["use_device_gradient"] = method == "adjoint"
        if config.use_device_jacobian_product is None:
            updated["use_device_jacobian_product"] = method == "adjoint"
        if config.grad_on_execution is None:
            # The adjoint's forward sweep gives the values too: one simulation, not two.
            updated["grad_on_execution"] = method == "adjoint"
        mcm = config.mcm_config.mcm_method
        if mcm not in (None, "deferred"):
            raise DeviceError(f"chimera.qubit runs mid-circuit measurements deferred, not {mcm!r}")
        updated["mcm_config"] = replace(config.mcm_config, mcm_method="deferred")
        return replace(config, **updated)

    def preprocess_transforms(self, execution_config: ExecutionConfig | None = None) -> CompilePipeline:
        config = execution_config or ExecutionConfig()
        program = CompilePipeline()
        program.add_transform(validate_device_wires, self.wires, name=self.name)
        program.add_transform(defer_measurements, allow_postselect=False)
        program.add_transform(
            decompose, stopping_condition=accepts, skip_initial_state_prep=False, name=self.name
        )
        program.add_transform(validate_measurements, name=self.name)
        program.add_transform(broadcast_expand)
        if config.gradient_method == "adjoint":
            self._add_adjoint_transforms(program)
        return program

    def _add_adjoint_transforms(self, program: CompilePipeline) -> None:
        """What a circuit must be for the adjoint method: analytic, expectation values only,
        every trainable operation one with a generator."""
        name = f"adjoint + {self.name}"
        program.add_transform(no_sampling, name=name)
        program.add_transform(
            decompose, stopping_condition=adjoint_ops, skip_initial_state_prep=False, name=name
        )
        program.add_transform(validate_observables, adjoint_observables, name=name)
        program.add_transform(
            validate_measurements,
            analytic_measurements=lambda m: isinstance(m, ExpectationMP),
            name=name,
        )
        program.add_transform(validate_adjoint_trainable_params)

    def supports_derivatives(self, execution_config=None, circuit=None) -> bool:
        if execution_config is None:
            return True
        if execution_config.gradient_method not in ("adjoint", "best"):
            return False
        if circuit is None:
            return True
        if circuit.shots:
            return False
        if all(isinstance(m, ExpectationMP) for m in circuit.measurements) and all(
            op.name in _ADJOINT_READY for op in circuit.operations
        ):
            return True
        adjoint = CompilePipeline()
        adjoint.add_transform(validate_device_wires, self.wires, name=self.name)
        self._add_adjoint_transforms(adjoint)
        try:
            adjoint((circuit,))
        except (DecompositionUndefinedError, DeviceError, AttributeError):
            return False
        return True

    def execute(self, circuits, execution_config=None):
        return tuple(self._simulate(tape) for tape in circuits)

    def compute_derivatives(self, circuits, execution_config=None):
        return tuple(self._jacobian(tape) for tape in circuits)

    def execute_and_compute_derivatives(self, circuits, execution_config=None):
        both = [self._values_and_jacobian(tape) for tape in circuits]
        return tuple(v for v, _ in both), tuple(j for _, j in both)

    def supports_vjp(self, execution_config=None, circuit=None) -> bool:
        return self.supports_derivatives(execution_config, circuit)

    def compute_vjp(self, circuits, cotangents, execution_config=None):
        return tuple(self._vjp(tape, cot) for tape, cot in zip(circuits, cotangents))

    def execute_and_compute_vjp(self, circuits, cotangents, execution_config=None):
        return self.execute(circuits, execution_config), self.compute_vjp(circuits, cotangents, execution_config)

    def _simulate(self, tape):
        tape = tape.map_to_standard_wires()
        n = len(tape.wires)
        state = self._simulator.statevector(from_tape(tape, n))
        state = state.reshape((2,) * n) if n else state[:1].reshape(())
        return measure_final_state(tape, state, False, rng=self._rng)

    def _gradients(self, tape, observables: list[str]) -> list[tuple[float, np.ndarray]]:
        """⟨O⟩ and d⟨O⟩/dθ for each trainable parameter of ``tape`` (wires 0..n-1), for each
        observable: the tape converted once, one adjoint run each."""
        n = len(tape.wires)
        trainable = {p: i for i, p in enumerate(tape.trainable_params)}
        native_gates, index = [], 0
        for op in tape.operations:
            if isinstance(op, qml.Snapshot):
                continue
            qubits, matrix = next(gates([op], n))
            derivatives = []
            if op.num_params == 1 and index in trainable:
                derivatives.append((trainable[index], derivative(op, n)))
            index += op.num_params
            native_gates.append((qubits, matrix, derivatives))
        gradient = self._simulator.gradient
        return [gradient(max(n, 1), native_gates, o, len(trainable)) for o in observables]

    def _values_and_jacobian(self, tape):
        """The expectation values of ``tape`` and their jacobian, shaped as PennyLane shapes them."""
        tape = tape.map_to_standard_wires()
        n = len(tape.wires)
        both = self._gradients(tape, [pauli_text(m.obs, n) for m in tape.measurements])
        values = tuple(np.array(v) for v, _ in both)
        jac = np.squeeze(np.array([g for _, g in both]))
        if jac.ndim == 1:
            jac = tuple(np.array(j) for j in jac)
        elif jac.ndim == 2:
            jac = tuple(tuple(np.array(j) for j in row) for row in jac)
        return (values[0] if len(values) == 1 else values), jac

    def _jacobian(self, tape):
        return self._values_and_jacobian(tape)[1]

    def _vjp(self, tape, cotangents):
        """Σ_k c_k d⟨O_k⟩/dθ in one adjoint pass: the observables summed, weighted first."""
        tape = tape.map_to_standard_wires()
        n = len(tape.wires)
        cotangents = [cotangents] if len(tape.measurements) == 1 else list(cotangents)
        weighted = qml.dot([float(c) for c in cotangents], [m.obs for m in tape.measurements])
        [(_, grad)] = self._gradients(tape, [pauli_text(weighted, n)])
        return tuple(np.array(g) for g in grad)
