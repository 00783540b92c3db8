"""A gateway in a page: sign MAML jobs and run them on a CHIMERA engine from Python.

    pip install ./python                                   # the chimera package, from the checkout
    chimera keygen gateway                                 # gateway.key and gateway.pub
    chimera trust add gateway.pub --name gateway --allow '*'
    chimera serve &
    python examples/maml_gateway.py examples/bell.maml.md examples/qft.maml.md --key gateway.key

Each document is signed with the key (any earlier signature replaced), all are submitted over one
stream, and each accepted job is followed to its end: its outcome, and whether its receipt is the
engine's signature over its result. Exits 1 if any job was refused or did not succeed.
"""

import argparse
import sys

import chimera


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("documents", nargs="+", help="MAML job files")
    parser.add_argument("--key", required=True, help="the gateway's secret key (PREFIX.key)")
    parser.add_argument("--server", default="http://127.0.0.1:50051")
    parser.add_argument("--tls-ca", help="the CA of the engine's certificate (PEM)")
    parser.add_argument("--cert", help="this gateway's client certificate (PEM)")
    parser.add_argument("--cert-key", help="that certificate's private key (PEM)")
    args = parser.parse_args()

    client = chimera.Client(
        args.server, tls_ca=args.tls_ca, cert=args.cert, key=args.cert_key, signing_key=args.key
    )
    signed = [chimera.sign(open(path, encoding="utf-8").read(), args.key) for path in args.documents]
    all_well = True
    for path, outcome in zip(args.documents, client.submit_batch(signed)):
        if isinstance(outcome, chimera.Refused):
            print(f"{path}: refused: {outcome}")
            all_well = False
            continue
        for event in client.watch(outcome["id"]):
            if "progress" in event:
                print(f"{path}: {event['state']} {event['progress']}")
        job = client.get(outcome["id"])
        verdict = "receipt verified" if job["receipt_valid"] else "RECEIPT NOT VALID"
        print(f"{path}: job {job['id']} {job['state']} on {job['head']}, {verdict}")
        print(f"  result: {job['result'] if job['result'] is not None else job['error']}")
        all_well &= job["state"] == "succeeded" and bool(job["receipt_valid"])
    return 0 if all_well else 1


if __name__ == "__main__":
    sys.exit(main())
