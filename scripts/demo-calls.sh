#!/bin/sh
# demo-calls.sh - run from a directory holding snapbox and guests/: freeze the
# demo guest into a snapshot file, show it, restore it and call functions,
# then serve it over HTTP for a few requests.
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
echo "-- snapbox serve demo=demo.snap --listen 127.0.0.1:0 (HTTP; ready pools: docs/serve.md)"
ip link set lo up 2>/dev/null || true # inside the KVM test VM's bare system
./snapbox serve demo=demo.snap --listen 127.0.0.1:0 --pool 2 --workers 2 >serve.out 2>&1 &
spid=$!
port=
for i in $(seq 50); do
    port=$(sed -n 's/.*listening on .* (port \([0-9]*\)).*/\1/p' serve.out)
    [ -n "$port" ] || ! kill -0 "$spid" 2>/dev/null && break
    sleep 0.2
done
[ -n "$port" ] || { echo "serve did not start:"; cat serve.out; exit 1; }
post() { # URL DATA: curl where there is one, else busybox wget
    if command -v curl >/dev/null; then curl -s -X POST --data "$2" "$1"
    else wget -q -O - --post-data "$2" "$1"; fi
}
for req in "add [2, 3]" "upper [\"hello, http\"]" "counter []" "counter []"; do
    printf 'POST /v1/demo/%-22s => ' "$req"
    post "http://127.0.0.1:$port/v1/demo/${req%% *}" "${req#* }"
    echo
done
echo "(counter answers the same each time: every request gets a sandbox reset to the snapshot)"
kill -TERM "$spid" && wait "$spid" && echo "(SIGTERM: serve drained and exited 0)"
