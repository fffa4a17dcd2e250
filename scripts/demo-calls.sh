#!/bin/sh
# demo-calls.sh - run from a directory holding snapbox and guests/: each line
# loads the demo guest, initialises it in a fresh KVM sandbox and calls one function.
set -u
for call in "add 2 3" "fmul 1.5 4" "upper hello" "reverse 0a0b0c" "counter" "call_host 40 2" "greet newcomer"; do
    printf 'snapbox run guests/demo.elf %-16s => ' "$call"
    # shellcheck disable=SC2086
    ./snapbox run guests/demo.elf $call 2>/dev/null || { echo "failed"; exit 1; }
done
printf 'snapbox run guests/hostile.elf %-13s => ' "null_read"
./snapbox run guests/hostile.elf null_read 2>&1
echo "(exit code $?: a guest fault is reported, never a host crash)"
