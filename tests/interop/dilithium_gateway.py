r"""MAML signatures and request proofs by an independent ML-DSA (`pip install dilithium-py`, a
pure-Python FIPS 204): `tests/maml_cli.rs` checks that it and `chimera` accept each other's, and it
shows the construction in a page. A gateway uses the `chimera` package instead
(`examples/maml_gateway.py`). With the key files that `chimera keygen` writes:

    python tests/interop/dilithium_gateway.py sign JOB.md --key PREFIX.key -o SIGNED.md
    python tests/interop/dilithium_gateway.py verify SIGNED.md --pub PREFIX.pub
    python tests/interop/dilithium_gateway.py proof Get JOB_ID --key PREFIX.key   # headers for GET /jobs/ID

The construction (README, "Signed MAML jobs"): the signed bytes are the document as it is (a
byte-order mark it starts with included) up to the `<!-- MAML:SIGNATURE:BEGIN -->` line with CRLF
turned into LF; the block holds their SHA3-512 and an ML-DSA-65 signature over that 64-byte digest
with the FIPS 204 context string b"MAML"; the key id is the SHA3-256 of the raw 1,952-byte public
key.

A job answers only the key that signed it: `proof` prints the three headers that prove a request
about a job comes from that key (README, "Whose jobs"), an ML-DSA-65 signature with the context
b"chimera-request" over "chimera-request-v1\n{call}\n{job id}\n{time}\n".
"""

import argparse
import base64
import datetime
import hashlib
import sys

from dilithium_py.ml_dsa import ML_DSA_65

BEGIN = "<!-- MAML:SIGNATURE:BEGIN -->\n"
END = "<!-- MAML:SIGNATURE:END -->\n"
CONTEXT = b"MAML"
REQUEST_CONTEXT = b"chimera-request"
PUBLIC_KEY_BYTES = 1952
SEED_BYTES = 32


def pem_der(path):
    lines = open(path).read().split("\n")
    return base64.b64decode("".join(l for l in lines if l and not l.startswith("-----")))


def split(text):
    """(signed text, signature fields or None) of a document."""
    text = text.replace("\r\n", "\n")
    if BEGIN not in text:
        return text, None
    body, block = text.split(BEGIN, 1)
    if not block.endswith(END):
        sys.exit("the signature block is not closed, or text follows it")
    fields = dict(line.split(": ", 1) for line in block[: -len(END)].splitlines() if line.strip())
    return body, fields


def key_pair(secret_key_file):
    # `chimera keygen` writes PKCS#8 in the seed form: the DER ends with the 32-byte seed.
    return ML_DSA_65.key_derive(pem_der(secret_key_file)[-SEED_BYTES:])


def sign(document, secret_key_file):
    public_key, secret_key = key_pair(secret_key_file)
    body, _ = split(document)
    if body and not body.endswith("\n"):
        body += "\n"
    digest = hashlib.sha3_512(body.encode()).digest()
    signature = ML_DSA_65.sign(secret_key, digest, ctx=CONTEXT)
    return (
        f"{body}{BEGIN}algorithm: ML-DSA-65\n"
        f"key_id: {hashlib.sha3_256(public_key).hexdigest()}\n"
        f"sha3_512: {digest.hex()}\n"
        f"signature: {base64.b64encode(signature).decode()}\n{END}"
    )


def verify(document, public_key_file):
    # SubjectPublicKeyInfo: the DER ends with the raw public key.
    public_key = pem_der(public_key_file)[-PUBLIC_KEY_BYTES:]
    body, fields = split(document)
    if fields is None:
        return "not signed"
    if fields.get("key_id") != hashlib.sha3_256(public_key).hexdigest():
        return "signed by another key"
    digest = hashlib.sha3_512(body.encode()).digest()
    if fields.get("sha3_512") != digest.hex():
        return "the document changed after it was signed"
    if not ML_DSA_65.verify(public_key, digest, base64.b64decode(fields["signature"]), ctx=CONTEXT):
        return "the signature does not verify"
    return None


def proof(call, job_id, secret_key_file):
    """The headers that prove `call` (Get, Watch, Cancel, GetReceiptDocument) about `job_id`
    comes from the key."""
    public_key, secret_key = key_pair(secret_key_file)
    time = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    message = f"chimera-request-v1\n{call}\n{job_id}\n{time}\n".encode()
    signature = ML_DSA_65.sign(secret_key, message, ctx=REQUEST_CONTEXT)
    return (
        f"chimera-key-id: {hashlib.sha3_256(public_key).hexdigest()}\n"
        f"chimera-request-time: {time}\n"
        f"chimera-request-signature: {base64.b64encode(signature).decode()}\n"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sign_command = commands.add_parser("sign")
    sign_command.add_argument("file")
    sign_command.add_argument("--key", required=True)
    sign_command.add_argument("-o", "--out")
    verify_command = commands.add_parser("verify")
    verify_command.add_argument("file")
    verify_command.add_argument("--pub", required=True)
    proof_command = commands.add_parser("proof")
    proof_command.add_argument("call", choices=["Get", "Watch", "Cancel", "GetReceiptDocument"])
    proof_command.add_argument("job_id")
    proof_command.add_argument("--key", required=True)
    args = parser.parse_args()
    if args.command == "proof":
        sys.stdout.write(proof(args.call, args.job_id, args.key))
        return
    document = open(args.file, encoding="utf-8", newline="").read()
    if args.command == "sign":
        signed = sign(document, args.key)
        if args.out:
            open(args.out, "w", encoding="utf-8", newline="").write(signed)
        else:
            sys.stdout.write(signed)
    else:
        problem = verify(document, args.pub)
        if problem:
            sys.exit(f"{args.file}: INVALID: {problem}")
        print(f"{args.file}: valid")


if __name__ == "__main__":
    main()
