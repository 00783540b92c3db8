"""CHIMERA's Python package against qsimcirq, Qiskit Aer and PennyLane lightning.qubit, from the same
Python process, with the same threads, in one run.

    python3 -m venv target/bench-venv
    target/bench-venv/bin/pip install maturin qiskit qiskit-aer "pennylane==0.45.*" qsimcirq ply
    (cd python && VIRTUAL_ENV=$PWD/../target/bench-venv ../target/bench-venv/bin/maturin develop --release)
    target/bench-venv/bin/python benches/python_compare.py [--threads 2] [--repeat 5] [--json out.json]

Three measurements, each a median of --repeat runs after one warm-up:
1. Simulate + 1024 shots of each circuit in benches/circuits/ (single precision where the simulator
   has it): chimera.Simulator.sample on the qiskit.QuantumCircuit (its conversion counted);
   qsim's QSimSimulator.run on the Cirq circuit (max_fused_gate_size=4); Aer's AerSimulator.run on
   the circuit transpiled for it; lightning.qubit's QNode returning qml.sample (the circuit built
   from PennyLane's named gates; lightning.qubit simulates in double precision only).
2. A PennyLane adjoint gradient: a hardware-efficient ansatz (RY, RZ on every qubit, then a CNOT
   chain; 3 layers), <Z0 Z(n-1)>, every parameter, at 12, 16 and 20 qubits: chimera.qubit against
   lightning.qubit, each with diff_method="adjoint", double precision.
3. The per-call overhead of a 5-qubit circuit with 100 shots: chimera.Simulator.sample against
   AerSimulator.run(...).result(), and chimera.qiskit.SamplerV2 against Aer's SamplerV2.
Ratios are chimera's time over the other's: below 1 means chimera is faster.
"""

import argparse
import json
import math
import os
import pathlib
import platform
import statistics
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHOTS = 1024


def median_time(run, repeat):
    run()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def qiskit_circuit(text):
    from qiskit import qasm2

    return qasm2.loads(text, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)


def pennylane_ops(qc):
    """The circuit's gates as PennyLane's named operations (measurements and barriers left out)."""
    import pennylane as qml

    named = {
        "h": qml.Hadamard, "x": qml.PauliX, "y": qml.PauliY, "z": qml.PauliZ, "cx": qml.CNOT,
        "cz": qml.CZ, "swap": qml.SWAP, "s": qml.S, "t": qml.T, "sx": qml.SX, "rx": qml.RX,
        "ry": qml.RY, "rz": qml.RZ, "p": qml.PhaseShift, "cp": qml.ControlledPhaseShift,
        "rzz": qml.IsingZZ, "u": qml.U3,
        "sdg": lambda wires: qml.adjoint(qml.S(wires)), "tdg": lambda wires: qml.adjoint(qml.T(wires)),
    }
    ops = []
    for instr in qc.data:
        name = instr.operation.name
        if name in ("measure", "barrier"):
            continue
        wires = [qc.find_bit(q).index for q in instr.qubits]
        params = [float(p) for p in instr.operation.params]
        ops.append((named[name], params, wires))
    return ops


def bench_circuits(threads, repeat):
    import cirq  # noqa: F401  (qsimcirq needs it)
    import pennylane as qml
    import qsimcirq
    from cirq.contrib.qasm_import import circuit_from_qasm
    from qiskit import transpile
    from qiskit_aer import AerSimulator

    import chimera

    ours = chimera.Simulator(precision="single", threads=threads, backend="cpu", seed=1)
    qsim = qsimcirq.QSimSimulator(qsimcirq.QSimOptions(max_fused_gate_size=4, cpu_threads=threads))
    aer = AerSimulator(method="statevector", precision="single", max_parallel_threads=threads)
    rows = []
    for path in sorted((ROOT / "benches" / "circuits").glob("*.qasm")):
        text = path.read_text()
        qc = qiskit_circuit(text)
        cirq_circuit = circuit_from_qasm("\n".join(l for l in text.splitlines() if not l.startswith("barrier")))
        compiled = transpile(qc, aer)
        ops = pennylane_ops(qc)
        dev = qml.device("lightning.qubit", wires=qc.num_qubits)

        @qml.qnode(dev, shots=SHOTS)
        def lightning():
            for op, params, wires in ops:
                op(*params, wires=wires)
            return qml.sample(wires=range(qc.num_qubits))

        row = {
            "circuit": path.stem,
            "qubits": qc.num_qubits,
            "chimera": median_time(lambda: ours.sample(qc, SHOTS), repeat),
            "qsim": median_time(lambda: qsim.run(cirq_circuit, repetitions=SHOTS), repeat),
            "aer": median_time(lambda: aer.run(compiled, shots=SHOTS).result(), repeat),
            "lightning": median_time(lightning, repeat),
        }
        rows.append(row)
        print(f"  {row['circuit']}: " + ", ".join(f"{k} {row[k] * 1e3:.1f} ms" for k in ("chimera", "qsim", "aer", "lightning")), flush=True)
    return rows


def bench_gradients(repeat, sizes):
    import pennylane as qml
    from pennylane import numpy as pnp

    rows = []
    for n in sizes:
        layers = 3
        weights = pnp.array(pnp.random.default_rng(1).uniform(-3, 3, (layers, n, 2)), requires_grad=True)

        def ansatz(w):
            for layer in w:
                for q in range(n):
                    qml.RY(layer[q, 0], wires=q)
                    qml.RZ(layer[q, 1], wires=q)
                for q in range(n - 1):
                    qml.CNOT(wires=[q, q + 1])
            return qml.expval(qml.Z(0) @ qml.Z(n - 1))

        times, grads = {}, {}
        for name in ("chimera.qubit", "lightning.qubit"):
            qnode = qml.QNode(ansatz, qml.device(name, wires=n), diff_method="adjoint")
            grad = qml.grad(qnode)
            grads[name] = grad(weights)
            times[name] = median_time(lambda: grad(weights), repeat)
        agree = float(abs(grads["chimera.qubit"] - grads["lightning.qubit"]).max())
        rows.append({"qubits": n, "parameters": 2 * n * layers, "chimera": times["chimera.qubit"],
                     "lightning": times["lightning.qubit"], "max_difference": agree})
        print(f"  gradient {n} qubits: chimera {times['chimera.qubit'] * 1e3:.1f} ms, lightning "
              f"{times['lightning.qubit'] * 1e3:.1f} ms, gradients differ by at most {agree:.1e}", flush=True)
    return rows


def bench_overhead(threads, repeat):
    from qiskit import QuantumCircuit, transpile
    from qiskit_aer import AerSimulator
    from qiskit_aer.primitives import SamplerV2 as AerSampler

    import chimera
    from chimera.qiskit import SamplerV2

    qc = QuantumCircuit(5)
    qc.h(0)
    for q in range(4):
        qc.cx(q, q + 1)
    qc.measure_all()
    ours = chimera.Simulator(threads=threads, backend="cpu", seed=1)
    aer = AerSimulator(method="statevector", max_parallel_threads=threads)
    compiled = transpile(qc, aer)
    calls = max(repeat, 5) * 40
    per_call = lambda run: median_time(run, calls)  # noqa: E731
    return {
        "simulator": {"chimera": per_call(lambda: ours.sample(qc, 100)),
                      "aer": per_call(lambda: aer.run(compiled, shots=100).result())},
        "sampler_v2": {"chimera": per_call(lambda: SamplerV2(seed=1).run([qc], shots=100).result()),
                       "aer": per_call(lambda: AerSampler(seed=1).run([compiled], shots=100).result())},
    }


def cell(column, value):
    """Times in ms; ratios (columns named a/b) as they are."""
    if isinstance(value, float) and "/" not in column:
        return f"{value * 1e3:.1f}"
    return str(value)


def table(rows, columns, others):
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(cell(c, r[c]) for c in columns) + " |")
    geo = {o: math.exp(statistics.mean(math.log(r["chimera"] / r[o]) for r in rows)) for o in others}
    return "\n".join(lines), geo


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="12,16,20", help="the gradient's qubit counts")
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    # lightning.qubit's OpenMP threads: the same number as everyone's.
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} threads", flush=True)
    circuits = bench_circuits(args.threads, args.repeat)
    gradients = bench_gradients(args.repeat, [int(s) for s in args.sizes.split(",")])
    overhead = bench_overhead(args.threads, args.repeat)
    for r in circuits:
        for o in ("qsim", "aer", "lightning"):
            r[f"chimera/{o}"] = round(r["chimera"] / r[o], 2)
    text, geo = table(circuits, ["circuit", "qubits", "chimera", "qsim", "aer", "lightning", "chimera/qsim", "chimera/aer", "chimera/lightning"], ["qsim", "aer", "lightning"])
    print("\nSimulate + 1024 shots (ms):\n" + text)
    print("geometric mean of chimera/other: " + ", ".join(f"{o} {g:.2f}" for o, g in geo.items()))
    for r in gradients:
        r["chimera/lightning"] = round(r["chimera"] / r["lightning"], 2)
    print("\nAdjoint gradient (ms):\n" + table(gradients, ["qubits", "parameters", "chimera", "lightning", "chimera/lightning"], ["lightning"])[0])
    print("\nPer call, 5 qubits, 100 shots (µs):")
    for kind, t in overhead.items():
        print(f"  {kind}: chimera {t['chimera'] * 1e6:.0f}, Aer {t['aer'] * 1e6:.0f}, ratio {t['chimera'] / t['aer']:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "circuits": circuits, "gradients": gradients, "overhead": overhead}, indent=1))


if __name__ == "__main__":
    main()
