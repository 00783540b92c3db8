"""``chimera.Client``: a gateway's client of a running engine (``chimera serve``) over gRPC.

Jobs and heads come back as dictionaries (the same JSON as ``chimera submit --json``); a job's
``receipt_valid`` says whether its receipt is the engine's signature over its result, checked
here. Every refusal is raised as :class:`Refused` carrying the engine's reason.
"""

from __future__ import annotations

import json
import os

from . import _native
from .signing import _pem

#: The engine refused a call. ``reason``: its reason (``UNSIGNED``, ``BAD_SIGNATURE``,
#: ``UNKNOWN_KEY``, ``RATE_LIMITED``, ``NO_SUCH_JOB``…); ``message``: what it said.
Refused = _native.Refused
Refused.reason = property(lambda self: self.args[0])
Refused.message = property(lambda self: self.args[1])
Refused.__str__ = lambda self: f"{self.args[1]} ({self.args[0]})"


def _bytes(value) -> bytes | None:
    """PEM or document bytes: given as bytes, as text, or as a path to read."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str) and ("\n" in value or value.lstrip().startswith("-----BEGIN")):
        return value.encode()
    with open(os.fspath(value), "rb") as f:
        return f.read()


class Client:
    """A client of the engine at ``server`` (``http://…``, or ``https://…`` with ``tls_ca``).

    ``cert``/``key``: this client's certificate and key, for an engine that asks for one;
    ``signing_key``: the secret key that signs its jobs, with which calls about a job (get,
    watch, cancel, receipt) prove the job is this client's. PEMs as text, bytes or paths.
    A closed or unreachable server is a ``ConnectionError``.
    """

    def __init__(self, server="http://127.0.0.1:50051", *, tls_ca=None, cert=None, key=None, signing_key=None):
        signing = None if signing_key is None else _pem(signing_key)
        self._native = _native.Client(server, _bytes(tls_ca), _bytes(cert), _bytes(key), signing)

    def submit(self, document) -> dict:
        """Submits a signed MAML document (text, bytes or a path); the job (``created`` is False
        when the engine already held it)."""
        return json.loads(self._native.submit(_bytes(document)))

    def submit_batch(self, documents) -> list:
        """Submits documents over one stream; for each, in order, the job or a ``Refused``."""
        outcomes = self._native.submit_batch([_bytes(d) for d in documents])
        return [o if isinstance(o, Refused) else json.loads(o) for o in outcomes]

    def watch(self, job_id: str):
        """The job's events (state changes, progress, its end) until it ends."""
        for event in self._native.watch(job_id):
            yield json.loads(event)

    def wait(self, job_id: str) -> dict:
        """The job once it has ended (watching it until then)."""
        for event in self.watch(job_id):
            if "finished" in event:
                return event["finished"]
        return self.get(job_id)

    def get(self, job_id: str) -> dict:
        return json.loads(self._native.get(job_id))

    def cancel(self, job_id: str) -> dict:
        return json.loads(self._native.cancel(job_id))

    def receipt(self, job_id: str) -> str:
        """The job's receipt as a MAML document the engine signed (``chimera.verify`` checks it
        against the engine's public key, ``DATA/engine.pub``)."""
        return self._native.receipt(job_id)

    def heads(self) -> list[dict]:
        return json.loads(self._native.heads())
