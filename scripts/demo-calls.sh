#!/bin/sh
# demo-calls.sh - run from a directory holding snapbox and guests/: freeze the
# demo guest into a snapshot file, show it, restore it and call functions.
set -u
echo "-- snapbox create guests/demo.elf -o demo.snap"
./snapbox create guests/demo.elf -o demo.snap 2>/dev/null || exit 1
echo "-- snapbox info demo.snap"
./snapbox info demo.snap || exit 1
echo "-- snapbox call demo.snap ... (each call restores a fresh sandbox from the file)"
for call in "add 2 3" "fmul 1.5 4" "upper hello" "reverse 0a0b0c" "counter" "call_host 40 2" "greet newcomer"; do
    printf 'snapbox call demo.snap %-16s => ' "$call"
    # shellcheck disable=SC2086
    ./snapbox call demo.snap $call --time 2>demo.time || { echo "failed"; cat demo.time; exit 1; }
done
sed 's/^snapbox: /   last call: /' demo.time
echo "-- snapbox call demo.snap counter --requests 3 (a template, one pooled sandbox, reset after each request)"
./snapbox call demo.snap counter --requests 3 --time 2>demo.time || { cat demo.time; exit 1; }
sed 's/^snapbox: /   /' demo.time
echo "-- snapbox call --json demo.snap add -- -2 3 (one JSON object; '--' before an argument that begins with '-')"
./snapbox call --json demo.snap add -- -2 3 || exit 1
echo "-- a guest on the C library: the rules example compiles 2000 regular expressions at init;"
echo "   snapbox create guests/rules.elf -o rules.snap --mem 64M --deadline 120000 --warm 'match /api/users/1'"
./snapbox create guests/rules.elf -o rules.snap --mem 64M --deadline 120000 \
    --warm 'match /api/users/1' 2>/dev/null || exit 1
echo "-- snapbox call rules.snap match '/x?p1=123&q=select t2' --requests 3 --time (ids of the matching rules)"
./snapbox call rules.snap match '/x?p1=123&q=select t2' --requests 3 --time 2>demo.time ||
    { cat demo.time; exit 1; }
sed 's/^snapbox: /   /' demo.time
printf 'snapbox run guests/hostile.elf %-13s => ' "null_read"
./snapbox run guests/hostile.elf null_read 2>&1
echo "(exit code $?: a guest fault is reported, never a host crash)"
