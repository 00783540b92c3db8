"""chimera.qiskit's primitives against Qiskit's reference primitives and Aer."""

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import ParameterVector
from qiskit.circuit.random import random_circuit
from qiskit.primitives import StatevectorEstimator, StatevectorSampler
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.primitives import EstimatorV2 as AerEstimator
from qiskit_aer.primitives import SamplerV2 as AerSampler
from scipy.stats import chi2

from chimera.qiskit import EstimatorV2, SamplerV2

#: A true sampler fails a chi-squared test at this significance once in 10^4 runs.
P_VALUE = 1e-4


def chi_squared_p(counts, reference, shots):
    """p-value of `counts` (a dict) drawn from the distribution `reference` sampled (a dict)."""
    keys = sorted(set(counts) | set(reference))
    obs = np.array([counts.get(k, 0) for k in keys], float)
    ref = np.array([reference.get(k, 0) for k in keys], float)
    # Two-sample test: both are draws of `shots` shots.
    keep = (obs + ref) > 0
    obs, ref = obs[keep], ref[keep]
    stat = np.sum((obs - ref) ** 2 / (obs + ref))
    return chi2.sf(stat, max(len(obs) - 1, 1))


def ansatz(n, layers):
    theta = ParameterVector("t", 2 * n * layers)
    qc = QuantumCircuit(n)
    k = 0
    for _ in range(layers):
        for q in range(n):
            qc.ry(theta[k], q)
            qc.rz(theta[k + 1], q)
            k += 2
        for q in range(n - 1):
            qc.cx(q, q + 1)
    return qc


def test_estimator_evs_match_qiskit_and_aer_to_1e10_over_a_sweep():
    qc = ansatz(4, 2)
    rng = np.random.default_rng(7)
    values = rng.uniform(-np.pi, np.pi, (3, 1, qc.num_parameters))
    observables = [SparsePauliOp(["ZZII", "XIXI"], [1.0, -0.5]), SparsePauliOp("IYZX")]
    pub = (qc, observables, values)  # broadcast to shape (3, 2)
    ours = EstimatorV2().run([pub]).result()[0].data
    assert ours.evs.shape == (3, 2) and np.all(ours.stds == 0)
    reference = StatevectorEstimator().run([pub]).result()[0].data.evs
    aer = AerEstimator(options={"backend_options": {"method": "statevector"}}).run([pub]).result()[0].data.evs
    assert np.max(np.abs(ours.evs - reference)) < 1e-10
    assert np.max(np.abs(ours.evs - aer)) < 1e-10


@pytest.mark.parametrize("seed", range(4))
def test_sampler_counts_pass_a_chi_squared_test_against_qiskit(seed):
    qc = random_circuit(5, 5, measure=False, seed=seed)
    qc.measure_all()
    shots = 4000
    ours = SamplerV2(seed=seed).run([qc], shots=shots).result()[0].data.meas.get_counts()
    ref = StatevectorSampler(seed=seed).run([qc], shots=shots).result()[0].data.meas.get_counts()
    assert sum(ours.values()) == shots
    assert chi_squared_p(ours, ref, shots) > P_VALUE


def test_registers_and_bit_order_are_qiskits():
    a, b = ClassicalRegister(2, "a"), ClassicalRegister(3, "b")
    qc = QuantumCircuit(QuantumRegister(3), a, b)
    qc.x(0)
    qc.x(2)
    qc.measure(0, a[1])  # 1 -> a = 0b10
    qc.measure(1, a[0])  # 0
    qc.measure(2, b[2])  # 1 -> b = 0b100
    qc.measure(0, b[0])  # 1 -> b = 0b101
    data = SamplerV2().run([qc], shots=10).result()[0].data
    assert data.a.get_counts() == {"10": 10}
    assert data.b.get_counts() == {"101": 10}
    assert data.a.num_bits == 2 and data.b.num_bits == 3


def test_a_parameter_sweep_gives_one_bit_array_per_point():
    qc = ansatz(3, 1)
    qc.measure_all()
    values = np.zeros((2, 4, qc.num_parameters))
    values[1, :, 0] = np.pi  # flips qubit 0, and the CX chain after it qubits 1 and 2
    from chimera.qiskit.circuits import sweep

    assert sweep(qc, values.reshape(-1, qc.num_parameters)) is not None, "the sweep runs in Rust"
    data = SamplerV2().run([(qc, values)], shots=50).result()[0].data
    assert data.meas.shape == (2, 4)
    assert data.meas[0, 3].get_counts() == {"000": 50}
    assert data.meas[1, 2].get_counts() == {"111": 50}


def test_mid_circuit_measurement_reset_and_if_test_match_aer():
    qc = QuantumCircuit(3, 3)
    qc.h(0)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.x(1)
    qc.reset(0)
    qc.h(2)
    qc.cx(2, 0)
    qc.measure([0, 1, 2], [0, 1, 2])
    shots = 4000
    ours = SamplerV2(seed=1).run([qc], shots=shots).result()[0].data.c.get_counts()
    aer = AerSampler(seed=1).run([qc], shots=shots).result()[0].data.c.get_counts()
    # c2 c1 c0 = (q2, the first measurement, q2 copied onto the reset q0)
    assert set(ours) == {"000", "010", "101", "111"}
    assert chi_squared_p(ours, aer, shots) > P_VALUE


def test_the_backend_transpiles_runs_and_serves_backend_sampler_v2():
    from qiskit import transpile
    from qiskit.circuit.library import UnitaryGate
    from qiskit.primitives import BackendSamplerV2
    from qiskit.quantum_info import random_unitary
    from qiskit_aer import AerSimulator

    from chimera.qiskit import ChimeraBackend

    qc = random_circuit(4, 4, measure=False, seed=9)
    qc.append(UnitaryGate(random_unitary(4, seed=2)), [1, 3])
    qc.measure_all()
    backend = ChimeraBackend(seed=1)
    compiled = transpile(qc, backend, optimization_level=2, seed_transpiler=1)
    shots = 4000
    ours = backend.run(compiled, shots=shots).result().get_counts()
    aer = AerSimulator(seed_simulator=1).run(transpile(qc, AerSimulator()), shots=shots).result().get_counts()
    assert sum(ours.values()) == shots
    assert chi_squared_p(ours, aer, shots) > P_VALUE
    memory = backend.run(compiled, shots=20, memory=True).result().get_memory()
    assert len(memory) == 20 and all(len(m) == 4 for m in memory)
    sampled = BackendSamplerV2(backend=backend).run([compiled], shots=shots).result()[0]
    assert chi_squared_p(sampled.data.meas.get_counts(), aer, shots) > P_VALUE


def test_two_registers_through_the_backend_keep_qiskits_layout():
    from chimera.qiskit import ChimeraBackend

    a, b = ClassicalRegister(1, "a"), ClassicalRegister(2, "b")
    qc = QuantumCircuit(QuantumRegister(2), a, b)
    qc.x(1)
    qc.measure(1, a[0])
    qc.measure(1, b[1])
    counts = ChimeraBackend().run(qc, shots=10).result().get_counts()
    assert counts == {"10 1": 10}


def test_a_sweep_of_every_named_parameterised_gate_runs_in_rust_and_matches_qiskit():
    from qiskit.circuit import Parameter
    from qiskit.circuit.library import U1Gate, U2Gate, U3Gate

    from chimera.qiskit.circuits import sweep

    a, b, c, d = (Parameter(x) for x in "abcd")
    qc = QuantumCircuit(3)
    qc.h([0, 1, 2])
    qc.rx(a, 0)
    qc.ry(b, 1)
    qc.rz(c, 2)
    qc.p(d, 0)
    qc.u(a, b, c, 1)
    qc.cp(d, 0, 2)
    qc.crx(a, 1, 0)
    qc.cry(b, 2, 1)
    qc.crz(c, 0, 1)
    qc.rzz(d, 0, 1)
    qc.rxx(a, 1, 2)
    qc.cu(a, b, c, d, 2, 0)
    qc.append(U1Gate(b), [2])
    qc.append(U2Gate(a, c), [1])
    qc.append(U3Gate(a, b, d), [0])
    qc.rx(2 * a + b, 2)  # an expression of parameters
    values = np.random.default_rng(5).uniform(-np.pi, np.pi, (4, 1, 4))
    observables = [SparsePauliOp(["ZZI", "XIY"], [1.0, 0.3]), SparsePauliOp("IXZ")]
    assert sweep(qc, values.reshape(-1, 4)) is not None, "every gate here has a native name"
    pub = (qc, observables, values)
    ours = EstimatorV2().run([pub]).result()[0].data.evs
    reference = StatevectorEstimator().run([pub]).result()[0].data.evs
    assert ours.shape == (4, 2)
    assert np.max(np.abs(ours - reference)) < 1e-10
