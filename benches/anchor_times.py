"""Times qsim and Qiskit Aer, those that import, on OpenQASM files as benches/compare.py does
(single precision, --shots shots, --threads threads, the median of --repeat runs after a warm-up).
`chimera bench` runs it for its report's anchors. One JSON line per file and simulator,
{"simulator", "file", "seconds"}, or {"simulator", "missing"} for one that does not import.

    pip install qiskit qiskit-aer qsimcirq ply
"""
import argparse
import importlib
import json

from compare import time_aer, time_qsim

SIMULATORS = [("qsim", "qsimcirq", time_qsim), ("Aer", "qiskit_aer", time_aer)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--shots", type=int, default=1024)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    for name, module, timer in SIMULATORS:
        try:
            importlib.import_module(module)
        except ImportError as e:
            print(json.dumps({"simulator": name, "missing": str(e)}), flush=True)
            continue
        for path in args.files:
            with open(path) as f:
                seconds = timer(f.read(), args.threads, args.shots, args.repeat)
            print(json.dumps({"simulator": name, "file": path, "seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
