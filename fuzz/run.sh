#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: `fuzz/run.sh [SECONDS] [TARGET ...]` (default 60
# seconds each, all targets). CI runs it after the tests.
#
# Builds with libFuzzer's coverage instrumentation on a stable toolchain, with plain cargo: no
# cargo-fuzz to install and no sanitizer, which needs nightly. Safe Rust has no memory errors for
# a sanitizer to find; what the targets look for is a panic, an input that takes longer than
# TIMEOUT seconds (a hang) or more than RSS_MB of memory, and libFuzzer reports all three.
# The corpus grows under fuzz/corpus/TARGET (seeded from the committed seeds); an input that fails
# is written to fuzz/artifacts/TARGET/ and the script exits non-zero. Replay one with
# `fuzz/target/<host>/release/TARGET FILE`.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(qasm_parse maml_parse proto_decode ai_spec submission)
timeout_s=${TIMEOUT:-10}
rss_mb=${RSS_MB:-2048}

# The binaries are looked for here, whatever the caller's CARGO_TARGET_DIR.
export CARGO_TARGET_DIR="$PWD/target"
host=$(rustc -vV | sed -n 's/^host: //p')
# The flags cargo-fuzz passes, less its sanitizer. An explicit --target keeps them off build
# scripts and proc macros.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares \
-Cdebug-assertions -Coverflow-checks"
cargo build --release --locked --target "$host" --bins

seeds_of() {
    case $1 in
        qasm_parse) echo seeds ;;
        maml_parse | submission) echo seeds-maml ;;
        ai_spec) echo seeds-ai-spec ;;
        *) ;;
    esac
}

for target in "${targets[@]}"; do
    binary="target/$host/release/$target"
    [ -x "$binary" ] || { echo "fuzz/run.sh: no fuzz target named $target" >&2; exit 2; }
    mkdir -p "corpus/$target" "artifacts/$target"
    log="target/$target.log"
    echo "== fuzzing $target for ${seconds}s (log: fuzz/$log)"
    # shellcheck disable=SC2046 # no seeds directory is no argument
    status=0
    "$binary" "corpus/$target" $(seeds_of "$target") \
        -max_total_time="$seconds" -timeout="$timeout_s" -rss_limit_mb="$rss_mb" \
        -artifact_prefix="artifacts/$target/" -print_final_stats=1 >"$log" 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$log" >&2
        echo "fuzz/run.sh: $target failed (exit status $status); a failing input is written to" \
            "fuzz/artifacts/$target/ (none if the fuzzer itself was killed)" >&2
        if [ "$status" -eq 139 ]; then
            # libFuzzer's main sets up no alternate signal stack, so a stack overflow dies
            # silently, with no input saved.
            echo "fuzz/run.sh: a segmentation fault with nothing saved is most likely a stack" \
                "overflow; see where with: gdb -batch -ex run -ex 'bt 40' --args" \
                "fuzz/$binary fuzz/corpus/$target" >&2
        fi
        exit 1
    fi
    grep -E '^(Done [0-9]+ runs|stat::peak_rss_mb)' "$log"
done
echo "fuzz/run.sh: ${targets[*]}: no failure in ${seconds}s each"
