"""Times qsim, Qiskit Aer and cuStateVec, those that this Python can run, on OpenQASM files:
qsim and Aer as benches/compare.py does (single precision, --shots shots, --threads threads),
cuStateVec on the first GPU as benches/custatevec_compare.py calls it (complex64: the state
allocated, every gate, then --shots samples); the median of --repeat runs after a warm-up.
`chimera bench` runs it for its report's anchors. One JSON line per file and simulator,
{"simulator", "file", "seconds"}; {"simulator", "missing"} for one that cannot run here, and
{"simulator", "file", "missing"} for a file it could not run (a state too large for the GPU, say).

    pip install qiskit qiskit-aer qsimcirq ply          # qsim and Aer
    pip install custatevec-cu13 cupy-cuda13x numpy      # cuStateVec, on a machine with a GPU
"""
import argparse
import importlib
import json


def qsim():
    importlib.import_module("qsimcirq")
    from compare import time_qsim

    return time_qsim


def aer():
    importlib.import_module("qiskit_aer")
    from compare import time_aer

    return time_aer


def custatevec():
    # The library is loaded and a handle made here, so that a machine without a GPU or without
    # cuBLAS says so once, as this simulator's reason, instead of failing on every file.
    import cupy
    from custatevec_compare import CuStateVec, library_path, time_custatevec

    cupy.cuda.runtime.getDeviceCount()
    cusv = CuStateVec(library_path())
    return lambda text, threads, shots, repeat: time_custatevec(cusv, text, shots, repeat)


# name: a function that returns the timer, (text, threads, shots, repeat) -> seconds, or raises
# saying why this simulator cannot run here
SIMULATORS = [("qsim", qsim), ("Aer", aer), ("cuStateVec", custatevec)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--shots", type=int, default=1024)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    for name, ready in SIMULATORS:
        try:
            timer = ready()
        except Exception as e:  # an absent module, library or GPU: each says what it lacks
            print(json.dumps({"simulator": name, "missing": f"{type(e).__name__}: {e}"}), flush=True)
            continue
        for path in args.files:
            with open(path) as f:
                text = f.read()
            try:
                seconds = timer(text, args.threads, args.shots, args.repeat)
            except Exception as e:
                print(json.dumps({"simulator": name, "file": path, "missing": f"{type(e).__name__}: {e}"}),
                      flush=True)
                continue
            print(json.dumps({"simulator": name, "file": path, "seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
