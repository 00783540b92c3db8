"""Sign and verify MAML jobs from Python, interoperable with `chimera sign` and `chimera verify`.

A gateway written in Python needs only `pip install dilithium-py` (a pure-Python FIPS 204 ML-DSA)
and the key files that `chimera keygen` writes:

    python examples/maml_gateway.py sign JOB.md --key PREFIX.key -o SIGNED.md
    python examples/maml_gateway.py verify SIGNED.md --pub PREFIX.pub

The construction (README, "Signed MAML jobs"): the signed bytes are the document up to the
`<!-- MAML:SIGNATURE:BEGIN -->` line with CRLF turned into LF; the block holds their SHA3-512 and an
ML-DSA-65 signature over that 64-byte digest with the FIPS 204 context string b"MAML"; the key id
is the SHA3-256 of the raw 1,952-byte public key.
"""

import argparse
import base64
import hashlib
import sys

from dilithium_py.ml_dsa import ML_DSA_65

BEGIN = "<!-- MAML:SIGNATURE:BEGIN -->\n"
END = "<!-- MAML:SIGNATURE:END -->\n"
CONTEXT = b"MAML"
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


def sign(document, secret_key_file):
    # `chimera keygen` writes PKCS#8 in the seed form: the DER ends with the 32-byte seed.
    seed = pem_der(secret_key_file)[-SEED_BYTES:]
    public_key, secret_key = ML_DSA_65.key_derive(seed)
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
    args = parser.parse_args()
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
