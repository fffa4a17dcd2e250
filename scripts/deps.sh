#!/bin/sh
# deps.sh - install the Debian packages snapbox needs, only those missing.
# usage: scripts/deps.sh [build|vm|bench|fuzz|valgrind|oci|debug|all]   (default: all)
#   build: compiler-side libraries (libelf, lz4, xxHash, cmocka, binutils), and
#          pkg-config, g++ and man (man-db, groff-base) for the install test,
#          libmicrohttpd (`snapbox serve`) and curl (its test)
#   vm:    what tests/kvm-vm.sh needs to boot a KVM-capable QEMU VM
#   bench: the lz4 command line tool (the size reference of `make bench`) and
#          gnuplot (its pictures); wrk for `make bench-serve`
#   fuzz:  clang with libFuzzer and its sanitizer runtimes (`make fuzz`)
#   valgrind: memcheck for `make check-valgrind`
#   oci:   a registry and its tools for `make check-oci` (tests/test_oci.sh)
#   debug: gdb, which the debugging suite drives (tests/run-debug.sh)
# Set SNAPBOX_NO_INSTALL=1 to only report what is missing.
set -eu
what=${1:-all}
build_pkgs="gcc make binutils libelf-dev liblz4-dev libxxhash-dev libcmocka-dev libseccomp-dev libjansson-dev python3 pkg-config g++ man-db groff-base musl-dev libmicrohttpd-dev curl libcurl4-openssl-dev libssl-dev"
vm_pkgs="qemu-system-x86 busybox-static cpio gzip"
bench_pkgs="lz4 gnuplot-nox wrk"
fuzz_pkgs="clang libclang-rt-dev"   # libFuzzer and the sanitizer runtimes are only recommended by clang
valgrind_pkgs="valgrind libc6-dbg"
oci_pkgs="docker-registry skopeo apache2-utils openssl curl"
debug_pkgs="gdb"
case "$what" in
    build) pkgs=$build_pkgs ;;
    vm) pkgs=$vm_pkgs ;;
    bench) pkgs=$bench_pkgs ;;
    fuzz) pkgs=$fuzz_pkgs ;;
    valgrind) pkgs=$valgrind_pkgs ;;
    oci) pkgs=$oci_pkgs ;;
    debug) pkgs=$debug_pkgs ;;
    all) pkgs="$build_pkgs $vm_pkgs $bench_pkgs $fuzz_pkgs $valgrind_pkgs $oci_pkgs $debug_pkgs" ;;
    *) echo "deps.sh: unknown set '$what' (build, vm, bench, fuzz, valgrind, oci, debug or all)" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "deps.sh: missing Debian packages:$missing" >&2
if [ "${SNAPBOX_NO_INSTALL:-0}" = 1 ]; then
    echo "deps.sh: SNAPBOX_NO_INSTALL=1, not installing; install them with apt-get" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "deps.sh: not root and no sudo; run: apt-get install$missing" >&2; exit 1; }
    sudo="sudo"
fi
echo "deps.sh: running apt-get update and apt-get install$missing" >&2
$sudo apt-get update -qq >&2
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >&2
echo "deps.sh: installed$missing" >&2
