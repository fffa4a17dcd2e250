#!/bin/sh
# valgrind-cli.sh - run the snapbox CLI under valgrind's memcheck: every path,
# good input and bad, must exit with its own code and with no memcheck error
# and no leak (memcheck's code 99 fails the run).
# usage: tests/valgrind-cli.sh SNAPBOX GUEST_DIR SCRATCH_DIR [kvm [VALGRIND_BIN VALGRIND_LIB]]
# Without "kvm" it runs the paths that need no KVM (SEED_SNAPSHOT names a
# snapshot file to read); with it, those that do. tests/valgrind-kvm.sh runs
# the kvm part natively or inside the KVM test VM, where valgrind's binary
# and tool directory are passed in.
set -u
cli=$1 guests=$2 tmp=$3 what=${4:-native}
vg=${5:-valgrind}
if [ $# -ge 6 ]; then # inside the KVM test VM: valgrind and ld.so's symbols brought along
    VALGRIND_LIB=$(cd "$6" && pwd) && export VALGRIND_LIB
    mkdir -p /usr/lib/debug && cp -r "$VALGRIND_LIB/debug/.build-id" /usr/lib/debug/
fi
failed=0
check() { # EXPECTED_EXIT ARGS...
    want=$1; shift
    out=$("$vg" -q --error-exitcode=99 --leak-check=full --show-leak-kinds=all \
        --errors-for-leak-kinds=all "$cli" "$@" 2>&1)
    got=$?
    if [ "$got" != "$want" ]; then
        echo "valgrind-cli: FAIL: snapbox $* exited $got, expected $want"
        echo "$out" | tail -30
        failed=1
    else
        echo "valgrind-cli: ok ($got): snapbox $*"
    fi
}
mkdir -p "$tmp"
if [ "$what" = kvm ]; then
    check 0 run "$guests/demo.elf" add 2 3
    check 0 run "$guests/demo.elf" upper hello
    check 9 run "$guests/hostile.elf" abort 7
    check 10 run "$guests/hostile.elf" null_read
    check 11 run "$guests/hostile.elf" spin --deadline 300
    check 0 create "$guests/demo.elf" -o "$tmp/demo.snap"
    check 0 call "$tmp/demo.snap" add 2 3
    check 0 call "$tmp/demo.snap" greet valgrind
    check 13 call "$tmp/demo.snap" nosuch
    check 13 call "$tmp/demo.snap" nosuch --json
    check 0 call "$tmp/demo.snap" add --json --time -- -2 3
    printf 'valgrind' > "$tmp/arg.txt"
    check 0 call "$tmp/demo.snap" upper "@$tmp/arg.txt"
    # valgrind offers no seccomp (it does not know the system call), so the
    # serving loop runs unconfined here; tests/test_template.c covers the filter.
    check 0 call "$tmp/demo.snap" counter --requests 3 --json --no-seccomp
else
    snap=$tmp/seed.snap   # encoded by the library from demo.elf (tests/fuzz/seed.c)
    cp "$SEED_SNAPSHOT" "$snap"
    check 0 --version
    check 0 --help
    check 2 frobnicate
    check 0 inspect "$guests/demo.elf"
    check 0 inspect "$guests/plain.elf" --json
    check 6 inspect "$guests/plain.elf" --require-note
    check 3 inspect "$tmp/missing.elf"
    head -c 100 "$guests/demo.elf" > "$tmp/truncated.elf"
    check 4 inspect "$tmp/truncated.elf"
    check 0 info "$snap"
    check 0 info "$snap" --json
    check 0 verify "$snap"
    cp "$snap" "$tmp/corrupt.snap"
    printf 'X' | dd of="$tmp/corrupt.snap" bs=1 seek=20000 conv=notrunc 2>/dev/null
    check 17 verify "$tmp/corrupt.snap"
    check 16 info "$guests/demo.elf"
    check 0 call --help
    check 0 help verify
    check 2 call "$snap" add --requests
    check 2 info "$snap" --frob --json
    check 0 verify "$snap" --json --policy abi
    check 17 verify "$tmp/corrupt.snap" --json
    check 0 coredump "$snap" -o "$tmp/snap.core"
    check 0 coredump "$snap" -o "$tmp/cut.core" --core-max 16K --json
    check 17 coredump "$tmp/corrupt.snap" -o "$tmp/corrupt.core"
    check 2 run --gdb 0.0.0.0:1 "$guests/demo.elf" add 1 2
fi
exit $failed
