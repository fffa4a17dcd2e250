#!/bin/sh
# serve-run.sh - the KVM part of `make bench-serve` (scripts/bench-serve.sh runs
# it natively or inside the KVM test VM): for the demo guest and for a guest
# that dirties 128 pages per request, and for each strategy, `snapbox serve`
# with a pool of 4 and 4 workers under wrk at 50 connections for SECONDS;
# then the warm call latency of the same function (`snapbox call --requests`);
# reuse also at 1 connection, whose p50 has no queueing in it.
# Prints one line "BENCH_SERVE_JSON {...}" at the end.
# usage: serve-run.sh GUESTS SNAPBOX WRK CURL SERVE.lua SECONDS WHERE
set -u
guests=$1 cli=$2 wrk=$3 curl=$4 lua=$5 secs=$6 where=$7
tmp=$(mktemp -d /tmp/snapbox-bench-serve.XXXXXX) || exit 1
spid=
trap '[ -n "$spid" ] && kill -KILL "$spid" 2>/dev/null; rm -rf "$tmp"' EXIT
ip link set lo up 2>/dev/null || true
die() { echo "bench-serve: $*" >&2; exit 1; }

"$cli" create "$guests/demo.elf" -o "$tmp/demo.snap" >/dev/null || die "cannot create demo.snap"
"$cli" create "$guests/bench.elf" --mem 64M -o "$tmp/dirty.snap" >/dev/null ||
    die "cannot create dirty.snap"

first() { awk -v p="$1" 'index($0, p) == 1 { print $NF; exit }'; }
metric() { "$curl" -s "http://127.0.0.1:$port/metrics" | first "$1"; }

# serve GUEST STRATEGY: start the server; $spid, $port
serve() {
    "$cli" serve --listen 127.0.0.1:0 "$1=$tmp/$1.snap" --strategy "$2" --pool 4 --workers 4 \
        --queue 64 --deadline 10000 >"$tmp/out" 2>"$tmp/err" &
    spid=$!
    for _ in $(seq 600); do
        port=$(sed -n 's/.*listening on .* (port \([0-9]*\)).*/\1/p' "$tmp/out")
        [ -n "$port" ] && return 0
        kill -0 "$spid" 2>/dev/null || break
        sleep 0.2
    done
    cat "$tmp/err" >&2
    die "snapbox serve $1 --strategy $2 did not start"
}

runs=
# run GUEST FUNC BODY STRATEGY
run() {
    serve "$1" "$4"
    url="http://127.0.0.1:$port/v1/$1/$2"
    # warm-up: the ready pools record their working set over the first requests
    "$wrk" -t1 -c4 -d1s --timeout 10s -s "$lua" "$url" -- "$3" >/dev/null 2>&1
    "$wrk" -t2 -c50 -d"${secs}s" --timeout 10s -s "$lua" "$url" -- "$3" >"$tmp/wrk" 2>&1
    w=$(sed -n 's/^WRK_JSON //p' "$tmp/wrk")
    [ -n "$w" ] || { cat "$tmp/wrk" >&2; die "wrk gave no result for $1 $4"; }
    rss=$(awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$spid/status")
    per=null p1=null
    if [ "$4" = reuse ]; then
        # one connection: the latency of a request that waits for nothing
        "$wrk" -t1 -c1 -d"${secs}s" --timeout 10s -s "$lua" "$url" -- "$3" >"$tmp/wrk1" 2>&1
        p1=$(sed -n 's/^WRK_JSON .*"p50_us": \([0-9]*\).*/\1/p' "$tmp/wrk1" |
             awk '{ printf "%.3f", $1 / 1000 }')
        # once the released sandboxes are reset: resident memory per ready one
        for _ in $(seq 100); do
            [ "$(metric "snapbox_pool_ready{")" = 4 ] && break
            sleep 0.1
        done
        res=$(metric "snapbox_pool_ready_resident_bytes{") ready=$(metric "snapbox_pool_ready{")
        [ "${ready:-0}" -gt 0 ] && per=$((res / ready))
    fi
    kill -TERM "$spid"; wait "$spid"; spid=
    row=$(echo "$w" | awk -v g="$1" -v f="$2" -v s="$4" -v rss="$rss" -v per="$per" -v p1="${p1:-null}" '{
        gsub(/[{},]/, " "); for (i = 1; i < NF; i++) { k = $i; gsub(/[":]/, "", k); v[k] = $(i + 1) }
        printf "{\"guest\": \"%s\", \"function\": \"%s\", \"strategy\": \"%s\", ", g, f, s
        printf "\"requests\": %d, \"requests_per_s\": %.1f, ", v["requests"], v["requests"] / (v["duration_us"] / 1e6)
        printf "\"p50_ms\": %.3f, \"p99_ms\": %.3f, \"p50_ms_1conn\": %s, ", v["p50_us"] / 1000, v["p99_us"] / 1000, p1
        printf "\"server_rss_bytes\": %d, \"per_sandbox_bytes\": %s, \"errors\": %d}", rss, per, v["non_2xx"] + v["socket_errors"]
    }')
    echo "bench-serve: $row"
    runs="${runs:+$runs, }$row"
}

warms=
# warm GUEST FUNC ARGS...: call and reset means of `snapbox call --requests`
warm() {
    g=$1; shift
    # the deadline as the server's: under TCG one call in thousands stalls
    out=$("$cli" call "$tmp/$g.snap" "$@" --requests 2000 --deadline 10000 --time --json) ||
        die "snapbox call $g $*: $(echo "$out" | cut -c1-300)"
    c=$(echo "$out" | sed -n 's/.*"call_mean": *\([0-9.e+-]*\).*/\1/p')
    r=$(echo "$out" | sed -n 's/.*"reset_mean": *\([0-9.e+-]*\).*/\1/p')
    row="{\"guest\": \"$g\", \"function\": \"$1\", \"call_ms\": $c, \"reset_ms\": $r}"
    echo "bench-serve: warm $row"
    warms="${warms:+$warms, }$row"
}

for strat in new restore reuse; do
    run demo add '[2, 3]' "$strat"
    run dirty dirty '[128]' "$strat"
done
warm demo add 2 3
warm dirty dirty 128
echo "BENCH_SERVE_JSON {\"where\": \"$where\", \"seconds\": $secs, \"connections\": 50, \"pool\": 4, \"workers\": 4, \"runs\": [$runs], \"warm\": [$warms]}"
