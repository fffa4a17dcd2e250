#!/bin/sh
# bench.sh BUILD_DIR - `make bench`: host-side phases natively, KVM phases on
# real KVM (natively with /dev/kvm, else inside the KVM test VM, and the
# output says so). Prints the tables and writes bench/results.json.
set -eu
build=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)
sh "$here/scripts/deps.sh" bench
tmp=$(mktemp -d /tmp/snapbox-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

"$build/bench/bench" host "$build/guests" "$tmp" "$tmp/host.json"
if [ "$(sh "$here/scripts/kvm-where.sh" "$build")" = native ]; then
    "$build/bench/bench" kvm "$build/guests" "$tmp" "$tmp/kvm.json" "native /dev/kvm"
else
    where="inside the KVM test VM (QEMU TCG, nested SVM): correctness only, not speed"
    KVMVM_FILES="$build/guests" KVMVM_MEM=3072 \
        "$here/tests/kvm-vm.sh" "$build/bench/bench" kvm guests /tmp - "$where" | tee "$tmp/kvm.log"
    tr -d '\r' < "$tmp/kvm.log" | sed -n 's/^BENCH_JSON //p' > "$tmp/kvm.json"
    [ -s "$tmp/kvm.json" ] || { echo "bench: the KVM part gave no results" >&2; exit 1; }
fi

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
{
    printf '{"machine": {"cpu": "%s", "cores": %s, "memory": "%s", "kernel": "%s"},\n' \
        "$cpu" "$(nproc)" "$mem" "$(uname -r)"
    printf ' "date": "%s",\n "host_side": ' "$(date -u +%Y-%m-%dT%H:%MZ)"
    cat "$tmp/host.json"
    printf ' , "kvm": '
    cat "$tmp/kvm.json"
    printf '}\n'
} > "$here/bench/results.json"
echo
echo "machine: $cpu, $(nproc) cores, $mem, Linux $(uname -r)"
echo "written: bench/results.json"
