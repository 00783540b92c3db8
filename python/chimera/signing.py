"""MAML signing for gateway scripts, by the engine's own ML-DSA-65 code."""

from __future__ import annotations

import os

from . import _native


def _pem(key) -> str:
    """A key as PEM text: given as such, or read from a path."""
    if isinstance(key, str) and key.lstrip().startswith("-----BEGIN"):
        return key
    with open(os.fspath(key), encoding="utf-8") as f:
        return f.read()


def keygen() -> tuple[str, str]:
    """A new ML-DSA-65 key pair as PEM text: (secret key, public key)."""
    return _native.keygen()


def sign(document: str, key) -> str:
    """``document`` (MAML text) signed with the secret ``key`` (PEM text or a path to it)."""
    return _native.sign(document, _pem(key))


def verify(document: str, key) -> str:
    """The signing key's id if ``document``'s signature verifies under the public ``key`` (PEM
    text or a path); a ``ValueError`` saying why not otherwise."""
    return _native.verify(document, _pem(key))
