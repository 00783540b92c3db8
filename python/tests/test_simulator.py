"""chimera.Simulator against Qiskit's exact statevector, and its refusals."""

import threading
import time

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit.random import random_circuit
from qiskit.exceptions import QiskitError
from qiskit.quantum_info import SparsePauliOp, Statevector

import chimera
from chimera import _native


@pytest.mark.parametrize("seed", range(8))
def test_statevector_matches_qiskit_on_random_circuits(seed):
    qc = random_circuit(6, 8, max_operands=3, seed=seed)
    got = chimera.Simulator().statevector(qc)
    assert np.allclose(got, Statevector(qc).data, atol=1e-12)


def test_single_precision_gives_a_complex64_state_close_to_double():
    qc = random_circuit(5, 6, seed=11)
    got = chimera.Simulator(precision="single").statevector(qc)
    assert got.dtype == np.complex64
    assert np.allclose(got, Statevector(qc).data, atol=1e-5)


def test_qasm_text_and_the_state_is_moved_not_copied():
    bell = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\nh q[0];\ncx q[0],q[1];\n"
    state = chimera.Simulator().statevector(bell)
    assert np.allclose(state, [2**-0.5, 0, 0, 2**-0.5])
    assert not state.flags["OWNDATA"], "the array wraps the simulator's buffer"


def test_sampling_is_repeatable_with_a_seed_and_keyed_as_qiskit():
    qc = QuantumCircuit(3, 3)
    qc.x(0)
    qc.h(2)
    qc.measure([0, 1, 2], [0, 1, 2])
    a = chimera.Simulator(seed=5).sample(qc, 500)
    assert a == chimera.Simulator(seed=5).sample(qc, 500)
    assert set(a) == {"001", "101"} and sum(a.values()) == 500


def test_expectation_of_pauli_sums():
    qc = random_circuit(4, 5, seed=2)
    obs = SparsePauliOp(["ZZII", "XIYI", "IIIZ"], [0.5, -1.25, 2.0])
    want = Statevector(qc).expectation_value(obs).real
    assert abs(chimera.Simulator().expectation(qc, obs) - want) < 1e-12
    text = "0.5*Z2 Z3 - 1.25*X3 Y1 + 2*Z0"
    assert abs(chimera.Simulator().expectation(qc, text) - want) < 1e-12


def test_adjoint_gradient_matches_finite_differences():
    t, u = Parameter("t"), Parameter("u")
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.rx(2 * t, 0)
    qc.cx(0, 1)
    qc.ry(u, 1)
    qc.crz(t + u, 1, 2)
    qc.rzz(u, 0, 2)
    obs = SparsePauliOp(["ZZI", "IXX", "YII"], [1.0, 0.5, -0.3])
    x = np.array([0.3, -0.8])

    def value(v):
        return Statevector(qc.assign_parameters(v)).expectation_value(obs).real

    got_value, grad = chimera.Simulator().gradient(qc, obs, x)
    assert abs(got_value - value(x)) < 1e-12
    for i in range(2):
        h = np.eye(2)[i] * 1e-6
        assert abs(grad[i] - (value(x + h) - value(x - h)) / 2e-6) < 1e-8


def test_bad_input_raises_with_a_message_never_crashes():
    with pytest.raises(ValueError, match="operation 0: a gate on 1 qubits needs a 2x2 matrix"):
        _native.Circuit(2, 0, [("gate", [0], np.eye(4, dtype=complex), None, None)])
    with pytest.raises(ValueError, match="qubit 5 is outside"):
        _native.Circuit(2, 0, [("gate", [5], np.eye(2, dtype=complex), None, None)])
    with pytest.raises(ValueError, match="line 3"):
        chimera.Simulator().statevector('OPENQASM 2.0;\ninclude "qelib1.inc";\nfoo q[0];\n')
    with pytest.raises(ValueError, match="observable"):
        chimera.Simulator().expectation(QuantumCircuit(2), "Q7")
    with pytest.raises(ValueError, match="qubit 9"):
        chimera.Simulator().expectation(QuantumCircuit(2), "Z9")
    with pytest.raises(ValueError, match="precision"):
        chimera.Simulator(precision="quad")
    with pytest.raises(TypeError, match="not int"):
        chimera.Simulator().statevector(42)
    qc = QuantumCircuit(2)
    qc.initialize([0, 1, 0, 0], [0, 1])
    with pytest.raises(QiskitError, match="'initialize'"):
        chimera.Simulator().statevector(qc)


def test_a_circuit_too_large_for_memory_is_a_memory_error():
    with pytest.raises(MemoryError, match="50 qubits"):
        chimera.Simulator().statevector(QuantumCircuit(50))


def test_another_python_thread_runs_while_a_simulation_does():
    qc = random_circuit(22, 6, max_operands=2, seed=1)
    ticks = []
    done = threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    ticker = threading.Thread(target=tick)
    ticker.start()
    start = time.perf_counter()
    chimera.Simulator().statevector(qc)
    end = time.perf_counter()
    done.set()
    ticker.join()
    during = [t for t in ticks if start < t < end]
    # Held GIL: the ticker would not run at all while the simulation does.
    assert len(during) >= 5, f"{len(during)} ticks in {end - start:.3f} s"


def test_signing_round_trip_and_a_tampered_document_is_refused(tmp_path):
    from pathlib import Path

    secret, public = chimera.keygen()
    document = (Path(__file__).parents[2] / "examples" / "bell.maml.md").read_text()
    signed = chimera.sign(document, secret)
    key_file = tmp_path / "gateway.pub"
    key_file.write_text(public)
    key_id = chimera.verify(signed, key_file)
    assert key_id and key_id == chimera.verify(signed, public)
    with pytest.raises(ValueError, match="digest|signature"):
        chimera.verify(signed.replace("h q[0]", "x q[0]", 1), public)
    with pytest.raises(ValueError, match="no signature block"):
        chimera.verify(document, public)  # the bundled example is unsigned
    _, other_public = chimera.keygen()
    with pytest.raises(ValueError):
        chimera.verify(signed, other_public)


def test_every_qiskit_standard_gate_matches_qiskits_statevector():
    from qiskit.circuit import Gate
    from qiskit.circuit.library import get_standard_gate_name_mapping

    rng = np.random.default_rng(3)
    checked = []
    for name, gate in get_standard_gate_name_mapping().items():
        if not isinstance(gate, Gate):
            continue  # measure, reset, delay: not unitary gates
        op = gate.base_class(*rng.uniform(-np.pi, np.pi, len(gate.params)))
        qc = QuantumCircuit(max(op.num_qubits, 1) + 1)
        qc.h(range(qc.num_qubits))
        qc.ry(0.3, 0)
        qc.append(op, list(range(op.num_qubits))[::-1])  # arguments reversed: order matters
        got = chimera.Simulator().statevector(qc)
        assert np.allclose(got, Statevector(qc).data, atol=1e-12), name
        checked.append(name)
    assert len(checked) >= 50, checked


def test_backend_choices_are_checked_and_auto_falls_back_to_the_cpu():
    with pytest.raises(ValueError, match='expected "auto", "cpu" or "cuda"'):
        chimera.Simulator(backend="tpu")
    with pytest.raises(ValueError, match="threads=0"):
        chimera.Simulator(threads=0)
    auto = chimera.Simulator(backend="auto")
    try:
        chimera.Simulator(backend="cuda")
    except RuntimeError as no_gpu:
        # No GPU here (as in CI): asking for one says why, and "auto" runs on the CPU.
        assert "cuda" in str(no_gpu) and "not available" in str(no_gpu)
        assert auto.backend.startswith("cpu")
    else:
        assert not auto.backend.startswith("cpu"), "with a GPU, auto picks it"
