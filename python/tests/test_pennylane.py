"""chimera.qubit beyond PennyLane's own device tests: adjoint gradients against default.qubit."""

import numpy as np
import pennylane as qml
import pytest
from pennylane import numpy as pnp


def hardware_efficient(weights, wires):
    for layer in weights:
        for w, (a, b) in zip(wires, layer):
            qml.RY(a, wires=w)
            qml.RZ(b, wires=w)
        for w in wires[:-1]:
            qml.CNOT(wires=[w, w + 1])


@pytest.mark.parametrize("diff_method", ["adjoint", "best"])
def test_adjoint_gradient_matches_default_qubit(diff_method):
    n = 5
    weights = pnp.array(np.random.default_rng(3).uniform(-np.pi, np.pi, (2, n, 2)), requires_grad=True)

    def cost(weights):
        hardware_efficient(weights, list(range(n)))
        return qml.expval(qml.Z(0) @ qml.Z(n - 1) + 0.5 * qml.X(2))

    ours = qml.grad(qml.QNode(cost, qml.device("chimera.qubit", wires=n), diff_method=diff_method))(weights)
    ref = qml.grad(qml.QNode(cost, qml.device("default.qubit", wires=n), diff_method="backprop"))(weights)
    assert np.allclose(ours, ref, atol=1e-10)


def test_jacobian_of_several_observables_and_a_hermitian():
    dev = qml.device("chimera.qubit", wires=3)
    ref = qml.device("default.qubit", wires=3)
    h = np.diag([1.0, 2.0, 3.0, 4.0])

    def circuit(x):
        qml.RX(x[0], 0)
        qml.CNOT([0, 1])
        qml.CRY(x[1], [1, 2])
        qml.IsingZZ(x[2], [0, 2])
        return qml.expval(qml.Y(1)), qml.expval(qml.Hermitian(h, [0, 2]))

    x = pnp.array([0.4, -1.1, 0.7], requires_grad=True)
    jac = qml.jacobian(lambda x: qml.math.stack(qml.QNode(circuit, dev, diff_method="adjoint")(x)))(x)
    want = qml.jacobian(lambda x: qml.math.stack(qml.QNode(circuit, ref, diff_method="backprop")(x)))(x)
    assert np.allclose(jac, want, atol=1e-10)


def test_wire_labels_and_state_order_are_pennylanes():
    dev = qml.device("chimera.qubit", wires=["a", "b", "c"])

    @qml.qnode(dev)
    def circuit():
        qml.PauliX("a")
        qml.Hadamard("c")
        return qml.state()

    state = circuit()
    assert np.allclose(state[0b100], 2**-0.5) and np.allclose(state[0b101], 2**-0.5)


def test_shots_give_samples_and_counts():
    dev = qml.device("chimera.qubit", wires=2, seed=4)

    @qml.qnode(dev, shots=1000)
    def circuit():
        qml.Hadamard(0)
        qml.CNOT([0, 1])
        return qml.counts(), qml.sample(qml.Z(1))

    counts, samples = circuit()
    assert set(counts) == {"00", "11"} and sum(counts.values()) == 1000
    assert samples.shape == (1000,) and set(np.unique(samples)) == {-1, 1}
