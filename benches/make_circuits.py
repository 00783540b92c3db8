"""Writes the benchmark circuits to benches/circuits/ (CPU, issue 2) and benches/circuits-gpu/ (the
same kinds scaled to 28-32 qubits, issue 3) as OpenQASM 2.0.

Run once (pip install qiskit mqt.bench); the .qasm files are committed so that every simulator in a
benchmark run reads exactly the same circuits.
"""
import pathlib

from mqt.bench import BenchmarkLevel, get_benchmark
from qiskit import qasm2, transpile
from qiskit.circuit.library import quantum_volume
from qiskit.circuit.random import random_circuit

OUT = pathlib.Path(__file__).parent / "circuits"
# Gates every reader here (ours, qsim through Cirq's QASM importer, Aer) knows.
BASIS = ["u", "p", "h", "x", "y", "z", "s", "sdg", "t", "tdg", "sx", "rx", "ry", "rz",
         "cx", "cz", "swap", "cp", "rzz", "ccx"]


def save(name, circuit, out=None):
    out = out or OUT
    if not any(i.operation.name == "measure" for i in circuit.data):
        circuit.measure_all()
    circuit = transpile(circuit, basis_gates=BASIS + ["measure"], optimization_level=0, seed_transpiler=1)
    path = out / f"{name}.qasm"
    path.write_text(qasm2.dumps(circuit))
    print(f"{path.name}: {circuit.num_qubits} qubits, {sum(circuit.count_ops().values())} operations")


OUT.mkdir(exist_ok=True)
save("qft_24", get_benchmark("qft", BenchmarkLevel.INDEP, 24))
save("ghz_26", get_benchmark("ghz", BenchmarkLevel.INDEP, 26))
save("qv_20", quantum_volume(20, seed=11).decompose())
save("random_22_d20", random_circuit(22, 20, max_operands=2, seed=7))
save("vqe_su2_22", get_benchmark("vqe_su2", BenchmarkLevel.INDEP, 22))
save("qaoa_20", get_benchmark("qaoa", BenchmarkLevel.INDEP, 20))

GPU = pathlib.Path(__file__).parent / "circuits-gpu"
GPU.mkdir(exist_ok=True)
save("qft_30", get_benchmark("qft", BenchmarkLevel.INDEP, 30), GPU)
save("ghz_32", get_benchmark("ghz", BenchmarkLevel.INDEP, 32), GPU)
save("qv_28", quantum_volume(28, seed=11).decompose(), GPU)
save("random_30_d20", random_circuit(30, 20, max_operands=2, seed=7), GPU)
save("vqe_su2_30", get_benchmark("vqe_su2", BenchmarkLevel.INDEP, 30), GPU)
save("qaoa_30", get_benchmark("qaoa", BenchmarkLevel.INDEP, 30), GPU)
