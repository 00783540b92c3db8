"""Times chimera's CUDA backend against NVIDIA cuStateVec on the same GPU and circuits, in one run.

    python benches/custatevec_compare.py --chimera target/release/chimera \
        [--custatevec /path/to/libcustatevec.so.1] [--circuits benches/circuits-gpu] [--check benches/circuits]

cuStateVec applies the circuit gate by gate with `custatevecApplyMatrix`, as its users do without a
fuser; controlled gates (cx, cz, cp, ccx) go in with their controls, so that cuStateVec touches
only the amplitudes they change. chimera fuses. Both in complex64 on the state already in GPU
memory; the times are medians of --repeat runs after a warm-up:
- chimera: `chimera sim FILE --backend cuda --shots 0 --json`: "simulate" less "allocate" (fusion
  and every gate, synchronised) and, apart, "allocate" (the state allocated and set to |0..0>,
  synchronised); process start and parsing not counted;
- cuStateVec: the loop over `custatevecApplyMatrix` between two device synchronisations, gate
  matrices prepared on the host beforehand; apart, the state allocated with CuPy and set to |0..0>.
The table gives both: the gates alone, and with the allocation.
`--check DIR` first compares the two final states on the (smaller) circuits in DIR: fidelity 1 shows
that both read the same circuits the same way.

Needs CuPy and NumPy; libcustatevec.so.1 comes in PyPI's `custatevec-cu13` wheel (it needs cuBLAS 13
on the library path), found there unless --custatevec or $CUSTATEVEC_LIBRARY names it. The reader
below takes the flat qelib1 programs of benches/circuits* and of `chimera bench`, whose anchor
script (benches/anchor_times.py) times cuStateVec with `time_custatevec`.
"""
import argparse
import cmath
import ctypes
import importlib.util
import json
import math
import os
import pathlib
import re
import statistics
import subprocess
import tempfile
import time

import numpy as np

CUDA_C_32F = 4
CUSTATEVEC_COMPUTE_32F = 1 << 2
CUSTATEVEC_MATRIX_LAYOUT_ROW = 1
CUSTATEVEC_SAMPLER_OUTPUT_RANDNUM_ORDER = 0


def u(theta, phi, lam):
    c, s = math.cos(theta / 2), math.sin(theta / 2)
    return [[c, -cmath.exp(1j * lam) * s], [cmath.exp(1j * phi) * s, cmath.exp(1j * (phi + lam)) * c]]


def diag(*d):
    return np.diag(d)


X = [[0, 1], [1, 0]]
# name: (matrix on the targets from the parameters, number of leading control qubits)
GATES = {
    "u": (lambda p: u(*p), 0), "u3": (lambda p: u(*p), 0),
    "p": (lambda p: diag(1, cmath.exp(1j * p[0])), 0), "u1": (lambda p: diag(1, cmath.exp(1j * p[0])), 0),
    "rz": (lambda p: diag(cmath.exp(-0.5j * p[0]), cmath.exp(0.5j * p[0])), 0),
    "rx": (lambda p: u(p[0], -math.pi / 2, math.pi / 2), 0),
    "ry": (lambda p: u(p[0], 0, 0), 0),
    "h": (lambda p: np.array([[1, 1], [1, -1]]) / math.sqrt(2), 0),
    "x": (lambda p: X, 0), "y": (lambda p: [[0, -1j], [1j, 0]], 0), "z": (lambda p: diag(1, -1), 0),
    "s": (lambda p: diag(1, 1j), 0), "sdg": (lambda p: diag(1, -1j), 0),
    "t": (lambda p: diag(1, cmath.exp(0.25j * math.pi)), 0), "tdg": (lambda p: diag(1, cmath.exp(-0.25j * math.pi)), 0),
    "sx": (lambda p: np.array([[1 + 1j, 1 - 1j], [1 - 1j, 1 + 1j]]) / 2, 0),
    "cx": (lambda p: X, 1), "cz": (lambda p: diag(1, -1), 1), "cp": (lambda p: diag(1, cmath.exp(1j * p[0])), 1),
    "ccx": (lambda p: X, 2),
    "swap": (lambda p: [[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], 0),
    "rzz": (lambda p: diag(*[cmath.exp((0.5j if b in (1, 2) else -0.5j) * p[0]) for b in range(4)]), 0),
}


def read_circuit(text):
    """(qubits, [(targets, controls, complex64 row-major matrix)]) of a flat qelib1 program."""
    offsets, n, gates = {}, 0, []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("qreg"):
            name, size = re.match(r"qreg\s+(\w+)\[(\d+)\];", line).groups()
            offsets[name], n = n, n + int(size)
            continue
        if not line or line.startswith(("OPENQASM", "include", "creg", "measure", "barrier", "//")):
            continue
        name, params, args = re.match(r"(\w+)(?:\((.*)\))?\s+(.+);", line).groups()
        values = [eval(p, {"__builtins__": {}}, {"pi": math.pi}) for p in params.split(",")] if params else []
        qubits = [offsets[r] + int(i) for r, i in re.findall(r"(\w+)\[(\d+)\]", args)]
        matrix, controls = GATES[name]
        gates.append((np.array(qubits[controls:], dtype=np.int32), np.array(qubits[:controls], dtype=np.int32),
                      np.ascontiguousarray(np.array(matrix(values), dtype=np.complex64))))
    return n, gates


def library_path():
    """libcustatevec.so.1: $CUSTATEVEC_LIBRARY, else the one PyPI's custatevec-cu13 installs."""
    if os.environ.get("CUSTATEVEC_LIBRARY"):
        return os.environ["CUSTATEVEC_LIBRARY"]
    spec = importlib.util.find_spec("cuquantum")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(root, "lib", "libcustatevec.so.1")
        if os.path.exists(path):
            return path
    raise FileNotFoundError("no libcustatevec.so.1: pip install custatevec-cu13, or set CUSTATEVEC_LIBRARY")


class CuStateVec:
    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        self.handle = ctypes.c_void_p()
        self.check(self.lib.custatevecCreate(ctypes.byref(self.handle)), "custatevecCreate")

    @staticmethod
    def check(status, what):
        if status != 0:
            raise RuntimeError(f"{what} returned status {status}")

    def run(self, n, gates):
        import cupy

        cupy.cuda.Device().synchronize()
        alloc_start = time.perf_counter()
        sv = cupy.zeros(1 << n, dtype=cupy.complex64)
        sv[0] = 1
        cupy.cuda.Device().synchronize()
        allocation = time.perf_counter() - alloc_start
        workspace, size = None, ctypes.c_size_t(0)
        for targets, controls, m in gates:
            self.check(self.lib.custatevecApplyMatrixGetWorkspaceSize(
                self.handle, CUDA_C_32F, ctypes.c_uint32(n), m.ctypes.data_as(ctypes.c_void_p), CUDA_C_32F,
                CUSTATEVEC_MATRIX_LAYOUT_ROW, 0, ctypes.c_uint32(len(targets)), ctypes.c_uint32(len(controls)),
                CUSTATEVEC_COMPUTE_32F, ctypes.byref(size)), "workspace size")
            if size.value and (workspace is None or workspace.size < size.value):
                workspace = cupy.empty(size.value, dtype=cupy.uint8)
        ws_ptr = ctypes.c_void_p(workspace.data.ptr if workspace is not None else 0)
        ws_size = ctypes.c_size_t(workspace.size if workspace is not None else 0)
        cupy.cuda.Device().synchronize()
        start = time.perf_counter()
        for targets, controls, m in gates:
            self.check(self.lib.custatevecApplyMatrix(
                self.handle, ctypes.c_void_p(sv.data.ptr), CUDA_C_32F, ctypes.c_uint32(n),
                m.ctypes.data_as(ctypes.c_void_p), CUDA_C_32F, CUSTATEVEC_MATRIX_LAYOUT_ROW, 0,
                targets.ctypes.data_as(ctypes.c_void_p), ctypes.c_uint32(len(targets)),
                controls.ctypes.data_as(ctypes.c_void_p) if len(controls) else None, None,
                ctypes.c_uint32(len(controls)), CUSTATEVEC_COMPUTE_32F, ws_ptr, ws_size), "apply matrix")
        cupy.cuda.Device().synchronize()
        return time.perf_counter() - start, allocation, sv

    def sample(self, sv, n, shots, seed=1):
        """`shots` outcomes of all n qubits (bit i of each is qubit i), drawn from the state."""
        import cupy

        sampler, size = ctypes.c_void_p(), ctypes.c_size_t(0)
        self.check(self.lib.custatevecSamplerCreate(
            self.handle, ctypes.c_void_p(sv.data.ptr), CUDA_C_32F, ctypes.c_uint32(n), ctypes.byref(sampler),
            ctypes.c_uint32(shots), ctypes.byref(size)), "sampler create")
        try:
            workspace = cupy.empty(size.value, dtype=cupy.uint8) if size.value else None
            self.check(self.lib.custatevecSamplerPreprocess(
                self.handle, sampler, ctypes.c_void_p(workspace.data.ptr if workspace is not None else 0), size),
                "sampler preprocess")
            outcomes = np.empty(shots, dtype=np.int64)
            ordering = np.arange(n, dtype=np.int32)
            randnums = np.random.default_rng(seed).random(shots)
            self.check(self.lib.custatevecSamplerSample(
                self.handle, sampler, outcomes.ctypes.data_as(ctypes.c_void_p),
                ordering.ctypes.data_as(ctypes.c_void_p), ctypes.c_uint32(n),
                randnums.ctypes.data_as(ctypes.c_void_p), ctypes.c_uint32(shots),
                CUSTATEVEC_SAMPLER_OUTPUT_RANDNUM_ORDER), "sampler sample")
        finally:
            self.lib.custatevecSamplerDestroy(sampler)
        return outcomes


def time_custatevec(cusv, text, shots, repeat):
    """Median seconds of an OpenQASM circuit on cuStateVec as `chimera bench` times its own
    backends, after a warm-up: the state allocated and set to |0..0>, every gate, then `shots`
    samples, between device synchronisations (the gate matrices are made beforehand, as chimera's
    parsing is not counted either)."""
    import cupy

    n, gates = read_circuit(text)
    times = []
    for i in range(repeat + 1):
        cupy.cuda.Device().synchronize()
        start = time.perf_counter()
        _, _, sv = cusv.run(n, gates)
        if shots:
            cusv.sample(sv, n, shots)
        cupy.cuda.Device().synchronize()
        if i > 0:
            times.append(time.perf_counter() - start)
        del sv
        cupy.get_default_memory_pool().free_all_blocks()
    return statistics.median(times)


def chimera(binary, path, statevector=None):
    args = [binary, "sim", str(path), "--backend", "cuda", "--shots", "0", "--json", "--precision", "single"]
    if statevector:
        args += ["--statevector", str(statevector)]
    out = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
    t = out["timings_ms"]
    return (t["simulate"] - t["allocate"]) / 1e3, t["allocate"] / 1e3, out["backend"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chimera", default="target/release/chimera")
    p.add_argument("--custatevec", help="libcustatevec.so.1 (default: $CUSTATEVEC_LIBRARY or custatevec-cu13's)")
    p.add_argument("--circuits", default="benches/circuits-gpu")
    p.add_argument("--check", help="directory of circuits whose final states to compare first")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    import cupy

    cusv = CuStateVec(args.custatevec or library_path())
    if args.check:
        for path in sorted(pathlib.Path(args.check).glob("*.qasm")):
            n, gates = read_circuit(path.read_text())
            _, _, sv = cusv.run(n, gates)
            with tempfile.TemporaryDirectory() as tmp:
                out = pathlib.Path(tmp) / "sv.npy"
                chimera(args.chimera, path, out)
                ours = np.load(out)
            fidelity = abs(np.vdot(cupy.asnumpy(sv).astype(np.complex128), ours.astype(np.complex128))) ** 2
            print(f"# check {path.stem}: fidelity chimera vs cuStateVec {fidelity:.7f}", flush=True)
            del sv
            cupy.get_default_memory_pool().free_all_blocks()
    rows = []
    for path in sorted(pathlib.Path(args.circuits).glob("*.qasm")):
        n, gates = read_circuit(path.read_text())
        # (gates, allocation) per run, chimera's and cuStateVec's
        ours, theirs = [], []
        for i in range(args.repeat + 1):
            t, t_alloc, device = chimera(args.chimera, path)
            s, s_alloc, sv = cusv.run(n, gates)
            del sv
            cupy.get_default_memory_pool().free_all_blocks()
            if i > 0:
                ours.append((t, t_alloc))
                theirs.append((s, s_alloc))
        median = lambda runs, f: statistics.median(f(r) for r in runs)
        gates_only = lambda r: r[0]
        with_allocation = lambda r: r[0] + r[1]
        row = (path.stem, n, len(gates), median(ours, gates_only), median(theirs, gates_only),
               median(ours, with_allocation), median(theirs, with_allocation))
        rows.append(row)
        print(f"# {row[0]}: gates chimera {row[3]*1e3:.1f} ms, cuStateVec {row[4]*1e3:.1f} ms; "
              f"with allocation {row[5]*1e3:.1f} ms, {row[6]*1e3:.1f} ms", flush=True)
    print(f"\nDevice: {device}; complex64; median of {args.repeat} after a warm-up\n")
    print("| circuit | qubits | gates | chimera (ms) | cuStateVec (ms) | ratio | chimera + allocation (ms) "
          "| cuStateVec + allocation (ms) | ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, n, g, a, b, aa, ba in rows:
        print(f"| {name} | {n} | {g} | {a*1e3:.1f} | {b*1e3:.1f} | {a/b:.2f} | {aa*1e3:.1f} | {ba*1e3:.1f} | {aa/ba:.2f} |")
    gm = lambda i, j: math.exp(statistics.fmean(math.log(r[i] / r[j]) for r in rows))
    print(f"| geometric mean | | | | | {gm(3, 4):.2f} | | | {gm(5, 6):.2f} |")


if __name__ == "__main__":
    os.environ.setdefault("CUPY_CACHE_DIR", tempfile.gettempdir())
    main()
