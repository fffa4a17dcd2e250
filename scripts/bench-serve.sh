#!/bin/sh
# bench-serve.sh BUILD_DIR - `make bench-serve`: `snapbox serve` under wrk
# (bench/serve-run.sh) natively with a usable /dev/kvm, else inside the KVM
# test VM (then the figures are not hardware figures: read the ratios between
# strategies and the memory per sandbox). Writes bench/serve-results.json and
# prints a table. SERVE_SECONDS (default 3): seconds of load per run.
set -eu
build=${1:-build}
secs=${SERVE_SECONDS:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
sh "$here/scripts/deps.sh" bench
sh "$here/scripts/deps.sh" build
tmp=$(mktemp -d /tmp/snapbox-bench-serve.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
wrk=$(command -v wrk) curl=$(command -v curl)
if [ "$(sh "$here/scripts/kvm-where.sh" "$build")" = native ]; then
    sh "$here/bench/serve-run.sh" "$build/guests" "$build/snapbox" "$wrk" "$curl" \
        "$here/bench/serve.lua" "$secs" "native /dev/kvm" | tee "$tmp/log"
else
    where="inside the KVM test VM (QEMU TCG, nested SVM, 1 vCPU): ratios, not speed"
    KVMVM_FILES="$build/guests $build/snapbox $wrk $curl $here/bench/serve.lua" KVMVM_MEM=3072 \
        "$here/tests/kvm-vm.sh" "$here/bench/serve-run.sh" guests ./snapbox ./wrk ./curl \
        ./serve.lua "$secs" "$where" | tee "$tmp/log"
fi
tr -d '\r' < "$tmp/log" | sed -n 's/^BENCH_SERVE_JSON //p' > "$tmp/kvm.json"
[ -s "$tmp/kvm.json" ] || { echo "bench-serve: no results" >&2; exit 1; }
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
python3 - "$tmp/kvm.json" "$here/bench/serve-results.json" "$cpu" "$(nproc)" <<'PY'
import json, sys, time
src, dst, cpu, cores = sys.argv[1:5]
d = json.load(open(src))
d = {"machine": {"cpu": cpu, "cores": int(cores)},
     "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), **d}
json.dump(d, open(dst, "w"), indent=1)
print(f"\nsnapbox serve under wrk: {d['connections']} connections, pool {d['pool']}, "
      f"{d['workers']} workers, {d['seconds']} s per run; {d['where']}")
print(f"{'guest':7} {'strategy':8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
      f"{'server RSS':>11} {'per sandbox':>12} {'errors':>6}")
rps = {}
for r in d["runs"]:
    rps[(r["guest"], r["strategy"])] = r["requests_per_s"]
    per = "-" if r["per_sandbox_bytes"] is None else f"{r['per_sandbox_bytes'] / 1024:.0f} KiB"
    print(f"{r['guest']:7} {r['strategy']:8} {r['requests_per_s']:9.1f} {r['p50_ms']:8.2f} "
          f"{r['p99_ms']:8.2f} {r['server_rss_bytes'] / 2**20:7.1f} MiB {per:>12} {r['errors']:6}")
for w in d["warm"]:
    reuse = next(r for r in d["runs"] if r["guest"] == w["guest"] and r["strategy"] == "reuse")
    g = w["guest"]
    print(f"{g}: warm call {w['call_ms']:.3f} ms (reset {w['reset_ms']:.3f} ms); reuse p50 at 1 "
          f"connection {reuse['p50_ms_1conn']:.3f} ms = {reuse['p50_ms_1conn'] / w['call_ms']:.1f}x "
          f"the warm call (at 50: {reuse['p50_ms']:.2f} ms, mostly queueing); "
          f"restore/new {rps[(g, 'restore')] / max(rps[(g, 'new')], 1e-9):.1f}x, "
          f"reuse/restore {rps[(g, 'reuse')] / max(rps[(g, 'restore')], 1e-9):.1f}x requests/s")
print(f"written: {dst}")
PY
