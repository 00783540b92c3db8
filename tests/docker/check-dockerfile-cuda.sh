#!/usr/bin/env bash
# Builds Dockerfile.cuda and runs its image on stand-ins for NVIDIA's CUDA images
# (cuda-stand-ins.Dockerfile), for machines that cannot reach NVIDIA's registry. It shows that the
# build stage installs Rust and compiles `--features cuda` with nvcc, and that the image runs as
# its unprivileged user with its default command, turns healthy by its own health check, serves
# metrics on its published port, takes a key trusted as the README says, runs a signed Bell job
# (on the CPU: the stand-in driver has no GPU) and stops cleanly on `docker stop`. Not shown: that
# NVIDIA's own images build it (their Ubuntu and toolkit layout), arm64, and anything on a GPU.
#
#   tests/docker/check-dockerfile-cuda.sh            # about 15 minutes on 2 cores
#
# Needs a Docker daemon, python3 and cargo (for the CUDA root), and DEBIAN_IMAGE (default
# debian:bookworm). Where Docker Hub is out of reach too, make that image from Debian's mirror:
#   debootstrap --variant=minbase bookworm rootfs http://deb.debian.org/debian
#   tar -C rootfs -c . | docker import - debian:bookworm
set -euo pipefail
cd "$(dirname "$0")/../.."
debian=${DEBIAN_IMAGE:-debian:bookworm}
name=chimera-dockerfile-check-$$
work=$(mktemp -d)
cleanup() {
    docker rm -f "$name" >/dev/null 2>&1 || true
    docker volume rm "$name" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAILED: $*" >&2; docker logs "$name" 2>&1 | tail -30 >&2 || true; exit 1; }
step() { echo "== $*"; }

step "stand-in base images (CUDA root from PyPI, on $debian)"
heads/ai/cuda-build-root.sh "$work/root" >/dev/null
mkdir -p "$work/context/cuda" "$work/context/ca-certificates"
for part in bin include nvvm lib; do cp -rL "$work/root/$part" "$work/context/cuda/$part"; done
cp /usr/local/share/ca-certificates/*.crt "$work/context/ca-certificates/" 2>/dev/null || true
for target in devel runtime; do
    docker build --quiet -f tests/docker/cuda-stand-ins.Dockerfile --build-arg DEBIAN_IMAGE="$debian" \
        --target "$target" -t "chimera-stand-in/cuda:13.0-$target" "$work/context" >/dev/null
done

step "docker build -f Dockerfile.cuda"
docker build -f Dockerfile.cuda -t chimera:cuda-stand-in \
    --build-arg BUILD_IMAGE=chimera-stand-in/cuda:13.0-devel \
    --build-arg RUNTIME_IMAGE=chimera-stand-in/cuda:13.0-runtime .

step "docker run (the image's default command)"
docker volume create "$name" >/dev/null
docker run -d --name "$name" -p 127.0.0.1::50051 -p 127.0.0.1::9090 \
    -v "$name:/var/lib/chimera" chimera:cuda-stand-in >/dev/null
health=starting
for _ in $(seq 90); do
    health=$(docker inspect -f '{{.State.Health.Status}}' "$name")
    [ "$health" = healthy ] && break
    [ "$(docker inspect -f '{{.State.Running}}' "$name")" = true ] || fail "the container stopped"
    sleep 1
done
[ "$health" = healthy ] || fail "not healthy after 90 s: $health"
echo "health check: $health"
uid=$(docker exec "$name" id -u)
[ "$uid" = 10001 ] || fail "runs as uid $uid, not 10001"
echo "user: $uid"
metrics_port=$(docker port "$name" 9090/tcp | head -1 | sed 's/.*://')
metrics=$(curl -sf "http://127.0.0.1:$metrics_port/metrics") || fail "no metrics on the published port"
grep -q '^chimera_head_status' <<< "$metrics" || fail "no chimera_head_status metric"
echo "metrics: $(grep -c '^chimera_' <<< "$metrics") chimera samples on port $metrics_port"

step "a signed Bell job, with a key trusted as the README says"
docker run --rm -v "$name:/var/lib/chimera" chimera:cuda-stand-in keygen --out /var/lib/chimera/gateway
docker run --rm -v "$name:/var/lib/chimera" chimera:cuda-stand-in trust add /var/lib/chimera/gateway.pub \
    --name gateway --allow quantum_circuit --data-dir /var/lib/chimera
docker cp examples/bell.maml.md "$name:/tmp/bell.maml.md"
docker exec "$name" chimera sign /tmp/bell.maml.md --key /var/lib/chimera/gateway.key -o /tmp/bell.signed.md
# --wait --json prints the job's events, then the job.
result=$(docker exec "$name" chimera submit /tmp/bell.signed.md --wait --json | tail -1) || fail "submit: $result"
python3 - "$result" <<'PY' || fail "unexpected result: $result"
import json, sys
job = json.loads(sys.argv[1])
counts = job["result"]["counts"]
assert job["state"] == "succeeded" and job["receipt_valid"], job
assert set(counts) <= {"00", "11"} and sum(counts.values()) == 4096, counts
print("bell job:", job["state"], "on", job["head"], counts, "receipt valid")
PY
heads=$(docker exec "$name" chimera heads --json)
python3 - "$heads" <<'PY' || fail "heads: $heads"
import json, sys
heads = json.loads(sys.argv[1])
assert len(heads) == 4 and all(h["status"] == "up" for h in heads), heads
print("heads:", ", ".join(f'{h["id"]} {h["backend"]}' for h in heads))
PY

step "docker stop"
docker stop "$name" >/dev/null
code=$(docker inspect -f '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || fail "exit code $code after docker stop"
echo "exit code after docker stop: $code"
echo "PASSED: Dockerfile.cuda built and ran on the stand-in images"
