#!/bin/sh
# run.sh BUILD_DIR SECONDS [TARGET...] - `make fuzz`: run each libFuzzer target
# for SECONDS on its growing corpus (build/fuzz/corpus/TARGET), seeded from
# build/fuzz/seeds and the regression inputs in tests/fuzz/regress/TARGET,
# then replay all of them with the gcc-built replay binary. A crash stops the
# run; its input is in build/fuzz/crashes/ and belongs in tests/fuzz/regress/.
set -eu
build=$1
secs=$2
shift 2
targets=${*:-"fuzz_elf fuzz_note fuzz_snap_header fuzz_snap_chunks fuzz_hypercall"}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$build/fuzz/crashes"
for t in $targets; do
    corpus=$build/fuzz/corpus/$t
    regress=$here/regress/$t
    mkdir -p "$corpus" "$regress"
    echo "== fuzz $t for ${secs}s"
    if ! "$build/fuzz/bin/$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
            -dict="$here/$t.dict" -artifact_prefix="$build/fuzz/crashes/$t-" -print_final_stats=1 \
            "$corpus" "$build/fuzz/seeds/$t" "$regress" 2>"$build/fuzz/$t.log"; then
        tail -40 "$build/fuzz/$t.log"
        echo "fuzz: $t failed; the input is in $build/fuzz/crashes/$t-*." >&2
        echo "fuzz: fix the bug, then add the input to tests/fuzz/regress/$t/ as a regression test." >&2
        exit 1
    fi
    grep -E "stat::number_of_executed_units|cov:" "$build/fuzz/$t.log" | tail -2
    "$build/fuzz/replay_$t" "$corpus" "$build/fuzz/seeds/$t" "$regress"
done
