"""Times `chimera sim` against qsim (qsimcirq) and Qiskit Aer on the same circuits, in one run.

    pip install qiskit qiskit-aer qsimcirq ply numpy
    cargo build --release
    python benches/compare.py [--threads N] [--repeat 3] [--json out.json]

Each simulator does the same work: simulate the circuit in single precision (complex64) and sample
1024 shots, with the same number of threads. Times are medians of --repeat runs after one warm-up:
- chimera: parse + simulate + sample as `chimera sim --json` reports them (the process start and
  JSON output are not counted; the wall time of the whole command is printed beside them);
- qsim: `QSimSimulator.run(circuit, repetitions)`, max_fused_gate_size=4 (the QASM import into
  Cirq is not counted);
- Aer: `AerSimulator(method="statevector", precision="single").run(...).result()` on the circuit
  already transpiled for it.
Prints a Markdown table of times and ratios (chimera / other: below 1 means chimera is faster).
"""
import argparse
import json
import math
import os
import pathlib
import platform
import statistics
import subprocess
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def time_chimera(binary, path, threads, shots, repeat):
    runs, walls = [], []
    for i in range(repeat + 1):
        t0 = time.perf_counter()
        out = subprocess.run([binary, "sim", str(path), "--shots", str(shots), "--seed", "1",
                              "--precision", "single", "--threads", str(threads), "--backend", "cpu",
                              "--json"], check=True, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        t = json.loads(out.stdout)["timings_ms"]
        if i > 0:  # the first run warms the page cache and the binary
            runs.append((t["parse"] + t["simulate"] + t["sample"]) / 1e3)
            walls.append(wall)
    return statistics.median(runs), statistics.median(walls)


def time_qsim(text, threads, shots, repeat):
    import qsimcirq
    from cirq.contrib.qasm_import import circuit_from_qasm

    # Cirq's importer does not read `barrier`, which has no effect on a simulation.
    circuit = circuit_from_qasm("\n".join(l for l in text.splitlines() if not l.startswith("barrier")))
    sim = qsimcirq.QSimSimulator(qsimcirq.QSimOptions(max_fused_gate_size=4, cpu_threads=threads))
    times = []
    for i in range(repeat + 1):
        t0 = time.perf_counter()
        sim.run(circuit, repetitions=shots)
        if i > 0:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_aer(text, threads, shots, repeat):
    from qiskit import QuantumCircuit, transpile
    from qiskit_aer import AerSimulator

    sim = AerSimulator(method="statevector", precision="single", max_parallel_threads=threads)
    circuit = transpile(QuantumCircuit.from_qasm_str(text), sim)
    times = []
    for i in range(repeat + 1):
        t0 = time.perf_counter()
        sim.run(circuit, shots=shots, seed_simulator=1).result()
        if i > 0:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def check_state(binary, path, text, threads):
    """Fidelity between chimera's final state and Aer's, both in double precision."""
    import tempfile

    import numpy as np
    from qiskit import QuantumCircuit, transpile
    from qiskit_aer import AerSimulator

    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "sv.npy"
        subprocess.run([binary, "sim", str(path), "--shots", "0", "--precision", "double", "--threads", str(threads),
                        "--statevector", str(out)], check=True, capture_output=True)
        ours = np.load(out)
    circuit = QuantumCircuit.from_qasm_str(text).remove_final_measurements(inplace=False)
    circuit.save_statevector()
    sim = AerSimulator(method="statevector", precision="double", max_parallel_threads=threads)
    # Level 0: higher levels elide SWAP gates into a permutation of the saved state's qubits.
    theirs = np.asarray(sim.run(transpile(circuit, sim, optimization_level=0)).result().get_statevector())
    return abs(np.vdot(theirs, ours)) ** 2


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chimera", default=str(ROOT / "target/release/chimera"))
    p.add_argument("--circuits", default=str(ROOT / "benches/circuits"))
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--shots", type=int, default=1024)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--only", help="comma-separated circuit names")
    p.add_argument("--skip-aer", action="store_true")
    p.add_argument("--json", help="write the raw numbers here")
    p.add_argument("--check", action="store_true", help="also check chimera's final state against Aer's")
    args = p.parse_args()

    paths = sorted(pathlib.Path(args.circuits).glob("*.qasm"))
    if args.only:
        paths = [q for q in paths if q.stem in args.only.split(",")]
    rows = []
    for path in paths:
        text = path.read_text()
        qubits = sum(int(l.split("[")[1].split("]")[0]) for l in text.splitlines() if l.startswith("qreg"))
        ours, wall = time_chimera(args.chimera, path, args.threads, args.shots, args.repeat)
        qsim = time_qsim(text, args.threads, args.shots, args.repeat)
        aer = None if args.skip_aer else time_aer(text, args.threads, args.shots, args.repeat)
        fidelity = check_state(args.chimera, path, text, args.threads) if args.check else None
        rows.append({"circuit": path.stem, "qubits": qubits, "chimera_s": ours, "chimera_wall_s": wall,
                     "qsim_s": qsim, "aer_s": aer, "fidelity_vs_aer": fidelity})
        print(f"# {path.stem}: chimera {ours*1e3:.1f} ms (wall {wall*1e3:.1f} ms), qsim {qsim*1e3:.1f} ms"
              + ("" if aer is None else f", aer {aer*1e3:.1f} ms")
              + ("" if fidelity is None else f", fidelity to Aer's state {fidelity:.12f}"), flush=True)

    print()
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; threads {args.threads}; "
          f"single precision, {args.shots} shots, median of {args.repeat}")
    print()
    print("| circuit | qubits | chimera (ms) | qsim (ms) | Aer (ms) | chimera/qsim | chimera/Aer |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        aer = "-" if r["aer_s"] is None else f"{r['aer_s']*1e3:.1f}"
        ra = "-" if r["aer_s"] is None else f"{r['chimera_s']/r['aer_s']:.2f}"
        print(f"| {r['circuit']} | {r['qubits']} | {r['chimera_s']*1e3:.1f} | {r['qsim_s']*1e3:.1f} | {aer} | "
              f"{r['chimera_s']/r['qsim_s']:.2f} | {ra} |")
    gq = math.exp(statistics.fmean(math.log(r["chimera_s"] / r["qsim_s"]) for r in rows))
    line = f"| geometric mean | | | | | {gq:.2f} |"
    if all(r["aer_s"] for r in rows):
        ga = math.exp(statistics.fmean(math.log(r["chimera_s"] / r["aer_s"]) for r in rows))
        line += f" {ga:.2f} |"
    print(line)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
