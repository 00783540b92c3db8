"""chimera's AI head against PyTorch on the same models, data, batch sizes and threads, in one run.

    python benches/ai_compare.py --chimera target/release/chimera --minilm models/all-minilm-l6-v2 \
        [--threads 2] [--device cpu|cuda] [--models mlp,cnn,minilm]

- digits MLP (examples/train-digits.yaml): training samples/s (forward, backward, AdamW step), the
  mean over epochs 2..N as `chimera train --json` reports them; PyTorch runs the same network
  (64-128-64-10, ReLU, dropout 0.1), AdamW, batch 64, on the same 1,438 training samples.
- Fashion-MNIST CNN (examples/train-fashion-cnn.yaml, one epoch): the same, 54,000 samples, batch 128;
  PyTorch's conv 3x3 pad 1 + BatchNorm2d + ReLU + MaxPool2d blocks, then dropout and 128 hidden.
- MiniLM-L6: sentences/s embedding a batch of 64 sentences, the median of 5 runs after a warm-up on
  both sides: chimera's timed inside the process (`chimera infer --repeat`, the embedding alone);
  PyTorch through sentence-transformers, normalised, batch 64, timed around `encode`.

Both sides use --threads threads (candle through RAYON_NUM_THREADS, PyTorch through
torch.set_num_threads) and --device: `cuda` needs a chimera built with `--features cuda` and compares
with PyTorch eager on the same GPU (timings taken after torch.cuda.synchronize). Needs PyTorch,
NumPy and sentence-transformers.
"""
import argparse
import gzip
import json
import os
import pathlib
import statistics
import subprocess
import tempfile
import time

import numpy as np
import torch
from torch import nn

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEVICE = "cpu"  # set by --device


def sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def run_chimera(command, env):
    """chimera's output; its error output, if it fails."""
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit code {done.returncode}:\n{done.stderr}")
    return done.stdout


def chimera_train(binary, spec, threads):
    with tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        lines = run_chimera([binary, "train", str(spec), "--json", "--out", out, "--device", DEVICE],
                            env).splitlines()
    epochs = [json.loads(l) for l in lines if '"samples_per_second"' in l]
    rates = [e["samples_per_second"] for e in epochs]
    return statistics.fmean(rates[1:] if len(rates) > 1 else rates), epochs[-1]["val_accuracy"]


def torch_epoch(model, x, y, batch, lr):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    order = torch.randperm(len(x), device=x.device)
    sync()
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        idx = order[i:i + batch]
        opt.zero_grad()
        loss_fn(model(x[idx]), y[idx]).backward()
        opt.step()
    sync()
    return len(x) / (time.perf_counter() - start)


def digits():
    data = np.load(ROOT / "heads/ai/data/digits.npy")
    x = (torch.tensor(data[:, :64], dtype=torch.float32) / 16.0).to(DEVICE)
    y = torch.tensor(data[:, 64], dtype=torch.long).to(DEVICE)
    n = round(len(x) * 0.8)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 64), nn.ReLU(),
                          nn.Dropout(0.1), nn.Linear(64, 10)).to(DEVICE)
    rates = [torch_epoch(model, x[:n], y[:n], 64, 0.003) for _ in range(6)]
    return statistics.fmean(rates[1:])


def fashion():
    folder = pathlib.Path("/usr/share/datasets/fashion-mnist")
    with gzip.open(folder / "train-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(folder / "train-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    x = (torch.tensor(images[:54000], dtype=torch.float32) / 255.0).to(DEVICE)
    y = torch.tensor(labels[:54000], dtype=torch.long).to(DEVICE)

    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]

    model = nn.Sequential(*block(1, 16), *block(16, 32), nn.Flatten(), nn.Dropout(0.25),
                          nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10)).to(DEVICE)
    return torch_epoch(model, x, y, 128, 0.002)


SENTENCES = [f"Sentence number {i}: a quantum circuit of {i % 7 + 2} qubits prepares a state, and "
             f"the engine reports its {'energy' if i % 2 else 'fidelity'} to the gateway." for i in range(64)]


def chimera_embed(binary, model_dir, threads, repeat=5):
    """Sentences/s of one batch, the median of `repeat` runs after a warm-up, timed inside chimera
    (`chimera infer --repeat`: the embedding alone, not loading the model or starting CUDA)."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory() as tmp:
        sentences = pathlib.Path(tmp) / "sentences.txt"
        sentences.write_text("\n".join(SENTENCES))
        out = run_chimera([binary, "infer", str(model_dir), str(sentences), "--json", "--device", DEVICE,
                           "--repeat", str(repeat + 1)], env)
    seconds = json.loads(out)["seconds"][1:]
    return len(SENTENCES) / statistics.median(seconds)


def torch_embed(model_dir, repeat=5):
    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer(str(model_dir), device=DEVICE)
    model.encode(SENTENCES, batch_size=64, normalize_embeddings=True)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        model.encode(SENTENCES, batch_size=64, normalize_embeddings=True)
        times.append(time.perf_counter() - start)
    return len(SENTENCES) / statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chimera", default="target/release/chimera")
    p.add_argument("--minilm", default="models/all-minilm-l6-v2")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--models", default="mlp,cnn,minilm", help="which to compare, comma-separated")
    args = p.parse_args()
    models = set(args.models.split(","))
    global DEVICE
    DEVICE = args.device
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    rows = []
    if "mlp" in models:
        ours, acc = chimera_train(args.chimera, ROOT / "examples/train-digits.yaml", args.threads)
        rows.append(("digits MLP, training", "samples/s", ours, digits(), f"val acc {acc:.3f}"))
        print(f"# {rows[-1]}", flush=True)
    if "cnn" in models:
        with tempfile.TemporaryDirectory() as tmp:
            spec = pathlib.Path(tmp) / "fashion-1-epoch.yaml"
            spec.write_text((ROOT / "examples/train-fashion-cnn.yaml").read_text()
                            .replace("epochs: 3", "epochs: 1").replace("checkpoint_every: 200\n", ""))
            ours, acc = chimera_train(args.chimera, spec, args.threads)
        rows.append(("Fashion-MNIST CNN, training (1 epoch)", "samples/s", ours, fashion(), f"val acc {acc:.3f}"))
        print(f"# {rows[-1]}", flush=True)
    if "minilm" in models:
        rows.append(("MiniLM-L6, batch of 64 sentences", "sentences/s",
                     chimera_embed(args.chimera, args.minilm, args.threads), torch_embed(args.minilm), ""))
        print(f"# {rows[-1]}", flush=True)
    print(f"\nPyTorch {torch.__version__}, {args.threads} threads on both sides, device {DEVICE}\n")
    print("| model | unit | chimera | PyTorch | chimera/PyTorch | note |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for name, unit, a, b, note in rows:
        print(f"| {name} | {unit} | {a:,.0f} | {b:,.0f} | {a / b:.2f} | {note} |")


if __name__ == "__main__":
    main()
