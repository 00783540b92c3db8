"""chimera.Client against a real `chimera serve`, started here on loopback and stopped after.

The engine binary is $CHIMERA_BINARY (tests/python_package.rs sets it to the one cargo built)."""

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

import chimera

EXAMPLES = Path(__file__).parents[2] / "examples"
BELL_ID = "6f1c2a52-8e0b-4c1e-9d4a-0b7f3c2e1a01"


def bell() -> str:
    """The bundled Bell job under an id of its own (an id names one document for good)."""
    return (EXAMPLES / "bell.maml.md").read_text().replace(BELL_ID, str(uuid.uuid4()))


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    binary = os.environ.get("CHIMERA_BINARY")
    if not binary:
        pytest.skip("SKIPPED: no $CHIMERA_BINARY (the chimera binary to serve the engine)")
    home = tmp_path_factory.mktemp("engine")
    data = home / "data"
    env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config")}
    secret, public = chimera.keygen()
    (home / "gateway.pub").write_text(public)
    (home / "gateway.key").write_text(secret)
    trust = [binary, "trust", "add", str(home / "gateway.pub"), "--name", "gateway", "--allow", "*"]
    subprocess.run(trust + ["--data-dir", str(data)], env=env, check=True, capture_output=True)
    serve = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--metrics-addr", "off", "--data-dir", str(data)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for line in serve.stdout:
            if line.startswith("chimera serve: listening on "):
                url = "http://" + line.split("listening on ", 1)[1].strip()
                break
        else:
            raise RuntimeError("chimera serve ended before it listened")
        # Keep reading its output so that it never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in serve.stdout], daemon=True).start()
        yield {"url": url, "secret": secret, "data": data, "key_file": home / "gateway.key"}
    finally:
        serve.terminate()
        serve.wait(timeout=30)


def test_submit_watch_and_a_receipt_verified(engine):
    client = chimera.Client(engine["url"], signing_key=engine["secret"])
    document = chimera.sign(bell(), engine["secret"])
    job = client.submit(document)
    assert job["created"] and job["state"] in ("queued", "running", "succeeded")
    events = list(client.watch(job["id"]))
    assert events and "finished" in events[-1]
    finished = client.get(job["id"])
    assert finished["state"] == "succeeded", finished
    assert finished["receipt_valid"] is True
    counts = finished["result"]["counts"]
    assert set(counts) == {"00", "11"} and sum(counts.values()) == 4096, counts
    receipt = client.receipt(job["id"])
    assert chimera.verify(receipt, engine["data"] / "engine.pub")
    assert any(h["role"] == "quantum" and h["status"] == "up" for h in client.heads())
    # The same document again is the same job, not a new one.
    assert client.submit(document)["created"] is False


def test_each_refusal_is_raised_with_the_engines_reason(engine):
    client = chimera.Client(engine["url"], signing_key=engine["secret"])
    with pytest.raises(chimera.Refused) as unsigned:
        client.submit(bell())
    assert unsigned.value.reason == "UNSIGNED" and unsigned.value.message
    stranger, _ = chimera.keygen()
    with pytest.raises(chimera.Refused) as unknown:
        client.submit(chimera.sign(bell(), stranger))
    assert unknown.value.reason == "UNKNOWN_KEY"
    tampered = chimera.sign(bell(), engine["secret"]).replace("h q[0]", "x q[0]")
    with pytest.raises(chimera.Refused) as bad:
        client.submit(tampered)
    assert bad.value.reason == "DIGEST_MISMATCH"
    with pytest.raises(chimera.Refused) as missing:
        client.get("no-such-job")
    assert missing.value.reason == "NO_SUCH_JOB"
    outcomes = client.submit_batch([bell(), chimera.sign(bell(), engine["secret"])])
    assert isinstance(outcomes[0], chimera.Refused) and outcomes[0].reason == "UNSIGNED"
    assert outcomes[1]["created"] is True


def test_a_closed_server_is_a_connection_error():
    with pytest.raises(ConnectionError, match="cannot reach the engine"):
        chimera.Client("http://127.0.0.1:9")


def test_the_gateway_example_runs_the_bundled_jobs(engine):
    jobs = [str(EXAMPLES / "bell.maml.md"), str(EXAMPLES / "qft.maml.md")]
    gateway = [sys.executable, str(EXAMPLES / "maml_gateway.py"), *jobs]
    out = subprocess.run(
        gateway + ["--key", str(engine["key_file"]), "--server", engine["url"]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("succeeded") == 2 and out.stdout.count("receipt verified") == 2, out.stdout
