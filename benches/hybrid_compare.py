"""chimera's hybrid training against PennyLane (lightning.qubit, adjoint) on the same model, data,
batch, schedule and epochs, in one run: seconds per training epoch.

    python benches/hybrid_compare.py --chimera target/release/chimera [--threads 2] [--epochs 20]
        [--qubits 4] [--device cpu|cuda] [--without-pennylane]

The model is examples/hybrid-moons.maml.md's: Linear(2, 4), its 4-qubit circuit (RX angle
embedding, 3 layers of RZ·RY·RZ on each qubit and a ring of CNOTs; the same gates written out in
PennyLane, not StronglyEntanglingLayers, whose CNOT ranges differ), ⟨Z⟩ of each qubit,
Linear(4, 2), softmax cross-entropy; Adam at 0.1 on a cosine schedule (chimera's AdamW with no
weight decay is Adam), batch 5. `--qubits N` widens the model to N qubits (the same layers; chimera
gets the circuit written out for N, and ⟨Z⟩ of each qubit), to see the simulation itself
dominate. The data: 200 moons points (noise 0.1) drawn here with NumPy as
scikit-learn's make_moons draws them, written to a CSV that both sides read; each side holds out 40
for validation by its own seeded shuffle and trains on 160.

An epoch's time is its training steps (forward, backward, update), not its validation pass:
chimera's from `chimera train --json` (160 / samples_per_second), PennyLane's timed around the
same loop. Reported: the median over epochs 2..N. Both sides on --threads threads (RAYON_NUM_THREADS
for chimera, OMP_NUM_THREADS for lightning.qubit). Needs pennylane and pennylane-lightning, unless
`--without-pennylane` (chimera alone, as on a GPU machine without PennyLane). `--device cuda`
simulates chimera's circuit on the GPU (a chimera built with `--features cuda`).
"""
import argparse
import json
import os
import pathlib
import re
import statistics
import subprocess
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "hybrid-moons.maml.md"
LAYERS, SAMPLES, NOISE, HELD_OUT = 3, 200, 0.1, 40


def make_moons(samples, noise, seed):
    """scikit-learn's make_moons: two half circles, Gaussian noise, shuffled."""
    rng = np.random.default_rng(seed)
    upper = samples // 2
    t_up = np.linspace(0, np.pi, upper)
    t_low = np.linspace(0, np.pi, samples - upper)
    x = np.concatenate([np.stack([np.cos(t_up), np.sin(t_up)], 1),
                        np.stack([1 - np.cos(t_low), 0.5 - np.sin(t_low)], 1)])
    y = np.concatenate([np.zeros(upper, int), np.ones(samples - upper, int)])
    x += noise * rng.standard_normal(x.shape)
    order = rng.permutation(samples)
    return x[order], y[order]


def spec_settings():
    """The example's training settings, read from its chimera-train block."""
    text = EXAMPLE.read_text()
    get = lambda key: re.search(rf"^\s*{key}: ([^\s#]+)", text, re.M).group(1)
    return {"lr": float(get("learning_rate")), "epochs": int(get("epochs")),
            "batch": int(get("batch_size")), "seed": int(get("seed"))}


def circuit_qasm(qubits):
    """The example's circuit for `qubits` qubits."""
    lines = ["OPENQASM 3.0;", 'include "stdgates.inc";',
             f"input array[float[64], {qubits}] x;",
             f"input array[float[64], {3 * qubits * LAYERS}] theta;", f"qubit[{qubits}] q;"]
    lines += [f"rx(x[{q}]) q[{q}];" for q in range(qubits)]
    w = 0
    for _ in range(LAYERS):
        for q in range(qubits):
            lines.append(f"rz(theta[{w}]) q[{q}]; ry(theta[{w + 1}]) q[{q}]; rz(theta[{w + 2}]) q[{q}];")
            w += 3
        lines += [f"cx q[{q}], q[{(q + 1) % qubits}];" for q in range(qubits)]
    return "\n".join(lines) + "\n"


def chimera_epochs(binary, data_dir, epochs, threads, qubits, device):
    job = EXAMPLE.read_text()
    if qubits != 4:
        job = re.sub(r"```qasm3\n.*?```", lambda _: f"```qasm3\n{circuit_qasm(qubits)}```", job,
                     count=1, flags=re.S)
        job = re.sub(r"^  observables: .*\n", "", job, count=1, flags=re.M)
    job = re.sub(r"^dataset: moons\b.*$", "dataset: moons.csv", job, count=1, flags=re.M)
    job = re.sub(r"^epochs: \d+", f"epochs: {epochs}", job, count=1, flags=re.M)
    spec = data_dir / "hybrid-moons.maml.md"
    spec.write_text(job)
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run([binary, "train", str(spec), "--json", "--out", str(data_dir / "run"),
                          "--data-dir", str(data_dir), "--device", device], check=True, capture_output=True, text=True,
                         env=env).stdout.splitlines()
    epochs = [json.loads(l) for l in out if '"samples_per_second"' in l]
    train_samples = SAMPLES - HELD_OUT
    return [train_samples / e["samples_per_second"] for e in epochs], epochs[-1]["val_accuracy"]


def pennylane_epochs(x, y, settings, epochs, threads, qubits):
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import pennylane as qml
    from pennylane import numpy as pnp

    device = qml.device("lightning.qubit", wires=qubits)

    @qml.qnode(device, diff_method="adjoint", interface="autograd")
    def circuit(inputs, theta):
        for q in range(qubits):
            qml.RX(inputs[:, q], wires=q)
        w = 0
        for _ in range(LAYERS):
            for q in range(qubits):
                qml.RZ(theta[w], wires=q)
                qml.RY(theta[w + 1], wires=q)
                qml.RZ(theta[w + 2], wires=q)
                w += 3
            for q in range(qubits):
                qml.CNOT(wires=[q, (q + 1) % qubits])
        return [qml.expval(qml.PauliZ(q)) for q in range(qubits)]

    rng = np.random.default_rng(settings["seed"])
    bound1, bound2 = 1 / np.sqrt(2), 1 / np.sqrt(qubits)
    params = [pnp.array(rng.uniform(-bound1, bound1, (qubits, 2)), requires_grad=True),
              pnp.array(rng.uniform(-bound1, bound1, qubits), requires_grad=True),
              pnp.array(rng.uniform(0, 2 * np.pi, 3 * qubits * LAYERS), requires_grad=True),
              pnp.array(rng.uniform(-bound2, bound2, (2, qubits)), requires_grad=True),
              pnp.array(rng.uniform(-bound2, bound2, 2), requires_grad=True)]

    def logits(xb, w1, b1, theta, w2, b2):
        q = pnp.stack(circuit(xb @ w1.T + b1, theta), axis=1)
        return q @ w2.T + b2

    def cost(w1, b1, theta, w2, b2, xb, yb):
        z = logits(xb, w1, b1, theta, w2, b2)
        z = z - pnp.max(z, axis=1, keepdims=True)
        log_p = z - pnp.log(pnp.sum(pnp.exp(z), axis=1, keepdims=True))
        return -pnp.mean(log_p[np.arange(len(yb)), yb])

    order = rng.permutation(len(x))
    val, train = order[:HELD_OUT], order[HELD_OUT:]
    opt = qml.AdamOptimizer(settings["lr"])
    times = []
    for epoch in range(epochs):
        # chimera's cosine schedule: the rate for epoch e of E is lr · (1 + cos(π e / E)) / 2.
        opt.stepsize = settings["lr"] * 0.5 * (1 + np.cos(np.pi * epoch / epochs))
        batches = rng.permutation(train)
        start = time.perf_counter()
        for i in range(0, len(batches), settings["batch"]):
            index = batches[i:i + settings["batch"]]
            params = opt.step(cost, *params, x[index], y[index])[:5]
        times.append(time.perf_counter() - start)
    predicted = np.argmax(np.asarray(logits(x[val], *params)), axis=1)
    return times, float(np.mean(predicted == y[val])), qml.version()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--chimera", default=str(ROOT / "target" / "release" / "chimera"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=None, help="default: the example's")
    parser.add_argument("--qubits", type=int, default=4)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--without-pennylane", action="store_true")
    args = parser.parse_args()
    settings = spec_settings()
    epochs = args.epochs or settings["epochs"]
    x, y = make_moons(SAMPLES, NOISE, 0)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = pathlib.Path(tmp)
        np.savetxt(data_dir / "moons.csv", np.column_stack([x, y]), delimiter=",", fmt="%.17g")
        ours, our_accuracy = chimera_epochs(args.chimera, data_dir, epochs, args.threads, args.qubits,
                                            args.device)
    ours_s = statistics.median(ours[1:])
    print(f"hybrid moons, {args.qubits} qubits: {SAMPLES - HELD_OUT} training samples, batch {settings['batch']}, "
          f"{epochs} epochs, {args.threads} threads; seconds per training epoch, median of epochs 2..{epochs}")
    print(f"{'':<34}{'s/epoch':>10}{'val acc':>10}")
    print(f"{'chimera (adjoint, ' + args.device + ')':<34}{ours_s:>10.4f}{our_accuracy:>10.3f}")
    if args.without_pennylane:
        return
    theirs, their_accuracy, version = pennylane_epochs(x, y, settings, epochs, args.threads, args.qubits)
    theirs_s = statistics.median(theirs[1:])
    print(f"{'PennyLane ' + version + ' lightning.qubit':<34}{theirs_s:>10.4f}{their_accuracy:>10.3f}")
    print(f"chimera is {theirs_s / ours_s:.1f}x PennyLane's speed per epoch")


if __name__ == "__main__":
    main()
