"""Qiskit's V2 primitives on CHIMERA's simulator: ``SamplerV2`` (bit arrays per classical
register, mid-circuit measurement, reset and ``if_test`` included) and ``EstimatorV2`` (exact
``evs`` when the precision is 0, as Aer's are; Gaussian noise of that standard deviation
otherwise, as Qiskit's reference estimator adds). Parameter sweeps broadcast as Qiskit's PUBs
define. Both hand a sweep to Rust whole (the circuit once, its angles as a table) when every
parameterised gate is one the engine names and nothing resets or branches; otherwise each point
is bound by Qiskit and simulated natively. The GIL is released while they simulate."""

from __future__ import annotations

import numpy as np
from qiskit.circuit import IfElseOp, Measure, Reset
from qiskit.exceptions import QiskitError
from qiskit.primitives import (
    BaseEstimatorV2,
    BaseSamplerV2,
    BitArray,
    DataBin,
    PrimitiveJob,
    PrimitiveResult,
    PubResult,
    SamplerPubResult,
)
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub

from ..simulator import Simulator, labelled_terms
from .circuits import from_qiskit, register_values, registers, shot_order, sweep_of


class SamplerV2(BaseSamplerV2):
    """``BaseSamplerV2`` on CHIMERA. ``seed`` makes the shots repeatable; ``precision``,
    ``threads`` and ``backend`` are ``chimera.Simulator``'s."""

    def __init__(self, *, default_shots=1024, seed=None, precision="double", threads=None, backend="auto"):
        self._default_shots = default_shots
        self._simulator = Simulator(precision, threads, backend, seed)
        self._rng = np.random.default_rng(seed)

    @property
    def default_shots(self) -> int:
        return self._default_shots

    def run(self, pubs, *, shots=None):
        coerced = [SamplerPub.coerce(pub, shots if shots is not None else self._default_shots) for pub in pubs]
        job = PrimitiveJob(self._run, coerced)
        job._submit()
        return job

    def _run(self, pubs):
        return PrimitiveResult([self._run_pub(pub) for pub in pubs], metadata={"version": 2})

    def _run_pub(self, pub: SamplerPub) -> SamplerPubResult:
        regs = registers(pub.circuit)
        shape = pub.parameter_values.shape
        arrays = {
            name: np.zeros(shape + (pub.shots, -(-size // 8)), dtype=np.uint8) for name, _, size in regs
        }
        flat = {name: a.reshape((-1,) + a.shape[len(shape):]) for name, a in arrays.items()}
        for point, counts in enumerate(self._counts(pub, regs)):
            for (name, _, size), values in zip(regs, self._per_register(counts, regs, pub.shots)):
                flat[name][point] = _packed(values, size)
        meas = {name: BitArray(arrays[name], size) for name, _, size in regs}
        return SamplerPubResult(
            DataBin(**meas, shape=pub.shape),
            metadata={"shots": pub.shots, "circuit_metadata": pub.circuit.metadata},
        )

    def _counts(self, pub, regs):
        """Each point's counts, in the sweep's order (C order of its shape)."""
        if not regs:
            return [{}] * int(np.prod(pub.parameter_values.shape, dtype=int))
        swept = sweep_of(pub.circuit, pub.parameter_values)
        if swept is not None:
            return self._simulator._native.sample_sweep(*swept, pub.shots)
        bound = pub.parameter_values.bind_all(pub.circuit).reshape(-1)
        return [self._simulator.sample(from_qiskit(circuit), pub.shots) for circuit in bound]

    def _per_register(self, counts, regs, shots):
        """Each register's value in each shot, the shots in random order. Keys hold the registers
        last-declared first, separated by spaces."""
        order = shot_order(counts, self._rng)
        assert len(order) == shots, "the simulator returned every shot"
        by_key = [register_values(key, regs) for key in counts]
        for r, (_, _, size) in enumerate(regs):
            values = np.array([v[r] for v in by_key], dtype=object if size > 63 else np.uint64)
            yield values[order] if by_key else np.zeros(shots, dtype=np.uint64)


def _point_by_point(simulator, circuit, pub) -> np.ndarray:
    """``evs`` with each point of the sweep bound by Qiskit and simulated in turn."""
    bound = pub.parameter_values.bind_all(circuit)
    bc_circuits, bc_obs = np.broadcast_arrays(bound, pub.observables)
    evs = np.zeros(bc_circuits.shape, dtype=np.float64)
    natives = {}
    for index in np.ndindex(*bc_circuits.shape):
        key = id(bc_circuits[index])
        native = natives.get(key) or natives.setdefault(key, from_qiskit(bc_circuits[index]))
        evs[index] = simulator.expectation(native, labelled_terms(bc_obs[index].items()))
    return evs


def _swept(simulator, circuit, pub):
    """``evs`` with the sweep bound in Rust (every parameterised gate one the engine names), or
    ``None``."""
    swept = sweep_of(circuit, pub.parameter_values)
    if swept is None:
        return None
    template, angles = swept
    shape = np.broadcast_shapes(pub.parameter_values.shape, pub.observables.shape)
    point_of = np.broadcast_to(np.arange(len(angles)).reshape(pub.parameter_values.shape), shape)
    observables = np.broadcast_to(pub.observables, shape)
    texts, pairs = {}, []
    for index in np.ndindex(*shape):
        text = labelled_terms(observables[index].items())
        pairs.append((int(point_of[index]), texts.setdefault(text, len(texts))))
    values = simulator._native.expectation_sweep(template, angles, list(texts), pairs)
    return np.array(values, dtype=np.float64).reshape(shape)


def _packed(values, num_bits: int) -> np.ndarray:
    """Integers as BitArray rows: big-endian bytes."""
    num_bytes = -(-num_bits // 8)
    if values.dtype == np.uint64:
        shifts = np.arange(num_bytes - 1, -1, -1, dtype=np.uint64) * np.uint64(8)
        return ((values[:, None] >> shifts) & np.uint64(0xFF)).astype(np.uint8)
    return np.array([list(int(v).to_bytes(num_bytes, "big")) for v in values], dtype=np.uint8).reshape(
        len(values), num_bytes
    )


class EstimatorV2(BaseEstimatorV2):
    """``BaseEstimatorV2`` on CHIMERA: exact expectation values (``stds`` 0) at precision 0."""

    def __init__(self, *, default_precision=0.0, seed=None, precision="double", threads=None, backend="auto"):
        self._default_precision = default_precision
        self._simulator = Simulator(precision, threads, backend, seed)
        self._rng = np.random.default_rng(seed)

    @property
    def default_precision(self) -> float:
        return self._default_precision

    def run(self, pubs, *, precision=None):
        precision = self._default_precision if precision is None else precision
        coerced = [EstimatorPub.coerce(pub, precision) for pub in pubs]
        job = PrimitiveJob(self._run, coerced)
        job._submit()
        return job

    def _run(self, pubs):
        return PrimitiveResult([self._run_pub(pub) for pub in pubs], metadata={"version": 2})

    def _run_pub(self, pub: EstimatorPub) -> PubResult:
        circuit = pub.circuit.remove_final_measurements(inplace=False)
        if any(isinstance(i.operation, (Measure, Reset, IfElseOp)) for i in circuit.data):
            raise QiskitError("EstimatorV2 takes circuits without mid-circuit measurement, reset or if_test")
        evs = _swept(self._simulator, circuit, pub)
        if evs is None:
            evs = _point_by_point(self._simulator, circuit, pub)
        if pub.precision != 0:
            evs = self._rng.normal(evs, pub.precision)
        stds = np.full(evs.shape, float(pub.precision))
        return PubResult(
            DataBin(evs=evs, stds=stds, shape=evs.shape),
            metadata={"target_precision": pub.precision, "circuit_metadata": pub.circuit.metadata},
        )

