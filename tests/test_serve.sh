#!/bin/sh
# test_serve.sh - `snapbox serve` against real KVM with a real HTTP client
# (curl): every endpoint, every error status, the queue full -> 503 path,
# SIGTERM with calls in flight (all answered, exit 0), /metrics line by line,
# no state carried from one request to the next, and the three strategies.
# Snapshots are made here with `snapbox create`.
# usage: tests/test_serve.sh GUESTS_DIR SNAPBOX [SBX_SERVE_ASAN=1] (via tests/run-kvm.sh, which
# runs it natively or inside the KVM test VM with curl carried in: `make check`)
set -u
guests=$1
cli=$2
# SBX_SERVE_ASAN=1: the server is SNAPBOX-asan (ASan and UBSan; `make check-serve`)
[ "${SBX_SERVE_ASAN:-0}" = 1 ] && cli=$2-asan
curl=$(command -v curl || echo ./curl)
tmp=$(mktemp -d /tmp/snapbox-serve.XXXXXX) || exit 1
failed=0
pid=
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "test_serve: FAIL: $*"; failed=1; }
ok() { echo "test_serve: ok: $*"; }
# In the KVM test VM nothing brings the loopback interface up.
ip link set lo up 2>/dev/null || true

# start NAME ARGS...: run `snapbox serve ARGS` on a free port; $port, $pid.
start() {
    name=$1; shift
    "$cli" serve --listen 127.0.0.1:0 "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    pid=$!
    for _ in $(seq 600); do
        port=$(sed -n -e 's/.*listening on .* (port \([0-9]*\)).*/\1/p' \
            -e 's/^{"listening": "127.0.0.1:0", "port": \([0-9]*\),.*/\1/p' "$tmp/$name.out")
        [ -n "$port" ] && { ok "$name: serving on port $port"; return 0; }
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    fail "$name: the server did not start"; cat "$tmp/$name.err"; exit 1
}

# stop: SIGTERM, and the server must exit 0.
stop() {
    kill -TERM "$pid"
    wait "$pid"; rc=$?; pid=
    [ "$rc" = 0 ] && ok "$name: exit 0 on SIGTERM" || { fail "$name: exit $rc on SIGTERM"; cat "$tmp/$name.err"; }
}

auth=
# req METHOD PATH [BODY]: $code and $tmp/body, $tmp/hdr
req() {
    if [ $# -ge 3 ]; then
        printf '%s' "$3" > "$tmp/req"
        code=$("$curl" -s -o "$tmp/body" -D "$tmp/hdr" -w '%{http_code}' -X "$1" ${auth:+-H "$auth"} \
            -H 'Content-Type: application/json' --data-binary @"$tmp/req" "http://127.0.0.1:$port$2")
    else
        code=$("$curl" -s -o "$tmp/body" -D "$tmp/hdr" -w '%{http_code}' -X "$1" ${auth:+-H "$auth"} \
            "http://127.0.0.1:$port$2")
    fi
}

# expect STATUS TEXT METHOD PATH [BODY]: the status, and TEXT in the body
expect() {
    want=$1 text=$2; shift 2
    req "$@"
    if [ "$code" != "$want" ]; then
        fail "$(echo "$*" | cut -c1-100) -> $code, expected $want: $(head -c 400 "$tmp/body")"
    elif ! grep -qF -- "$text" "$tmp/body"; then
        fail "$(echo "$*" | cut -c1-100) -> $code without '$(echo "$text" | cut -c1-60)': $(head -c 400 "$tmp/body")"
    else
        ok "$(echo "$*" | cut -c1-100) -> $code $(head -c 160 "$tmp/body")"
    fi
}

# first PREFIX: the value of the first sample line that starts with PREFIX
first() { awk -v p="$1" 'index($0, p) == 1 { print $NF; exit }'; }
metric() { "$curl" -s ${auth:+-H "$auth"} "http://127.0.0.1:$port/metrics" | first "$1"; }

# wait_metric PREFIX VALUE: poll /metrics until the sample has VALUE
wait_metric() {
    for _ in $(seq 300); do
        [ "$(metric "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    fail "metric $1 never became $2 (it is $(metric "$1"))"
}

"$cli" create "$guests/demo.elf" -o "$tmp/demo.snap" --warm counter >/dev/null &&
"$cli" create "$guests/hostile.elf" -o "$tmp/hostile.snap" >/dev/null ||
    { fail "snapbox create"; exit 1; }
printf 'serve-test-token-0123456789\n' > "$tmp/token"

echo "-- reuse: endpoints, arguments by type, errors, metrics"
start reuse demo="$tmp/demo.snap" hostile="$tmp/hostile.snap" --pool 2 --workers 2 --queue 8 \
    --deadline 2000 --max-body 4096 --token-file "$tmp/token"
expect 200 '"status":"ok"' GET /healthz
expect 401 '"code":"unauthorized"' GET /v1
grep -qi '^WWW-Authenticate: Bearer' "$tmp/hdr" || fail "401 without WWW-Authenticate"
auth='Authorization: Bearer wrong-token-0123456789'
expect 401 '"code":"unauthorized"' POST /v1/demo/add '[1,2]'
auth='Authorization: Bearer serve-test-token-0123456789'
expect 200 '"snapshots":["demo","hostile"]' GET /v1
expect 200 '{"name":"add","args":["i32","i32"],"ret":"i32"}' GET /v1/demo
expect 200 '{"result":5}' POST /v1/demo/add '[2,3]'
expect 200 '{"result":-1}' POST /v1/demo/add '["-0x2", 1]'
expect 200 '{"result":"héllo \u0000 world"}' POST /v1/demo/echo '["h\u00e9llo \u0000 world"]'
expect 200 '{"result":"030201ff"}' POST /v1/demo/reverse '["ff010203"]'
expect 200 '{"result":"18446744073709551615"}' POST /v1/demo/mul_u64 '["18446744073709551615", 1]'
expect 200 '{"result":3.0}' POST /v1/demo/fmul '[1.5, 2]'
expect 200 '{"result":false}' POST /v1/demo/negate '[true]'
expect 200 '{"result":null}' POST /v1/demo/log '[2, "logged by a request"]'
expect 200 '{"result":5}' POST /v1/demo/call_host '[2, 3]'
expect 400 '"code":"bad_json"' POST /v1/demo/add '[1,'
expect 400 '"code":"bad_json"' POST /v1/demo/add '{"a": 1}'
expect 400 '"code":"bad_args"' POST /v1/demo/add '[1]'
expect 400 'add takes 2 arguments, got 1' POST /v1/demo/add '[1]'
expect 400 'argument 0 (i32)' POST /v1/demo/add '["x", 1]'
expect 400 'fractional' POST /v1/demo/add '[1.5, 1]'
expect 400 'out of range for i32' POST /v1/demo/add '[3000000000, 1]'
expect 400 'negative for u64' POST /v1/demo/mul_u64 '[-1, 1]'
expect 400 'hex' POST /v1/demo/reverse '["abc"]'
expect 400 'expected a JSON string' POST /v1/demo/echo '[5]'
expect 200 '{"result":"@/etc/passwd"}' POST /v1/demo/echo '["@/etc/passwd"]'
expect 404 "no snapshot named 'nope'" POST /v1/nope/add '[1,2]'
expect 404 "has no function 'nope'" POST /v1/demo/nope '[]'
expect 404 "no snapshot named 'nope'" GET /v1/nope
expect 404 '"code":"not_found"' GET /nothing
expect 405 '"code":"method_not_allowed"' GET /v1/demo/add
grep -qi '^Allow: POST' "$tmp/hdr" || fail "405 without Allow"
expect 405 '"code":"method_not_allowed"' DELETE /v1/demo
big=$(head -c 3000 /dev/zero | tr '\0' 'a')
expect 413 '"code":"too_large"' POST /v1/demo/echo "[\"$big$big\"]"
expect 200 "\"result\":\"$big\"" POST /v1/demo/echo "[\"$big\"]"
printf '["%s%s"]' "$big" "$big" > "$tmp/bigbody"
code=$("$curl" -s -o "$tmp/body" -w '%{http_code}' -H "$auth" -H 'Transfer-Encoding: chunked' \
    --data-binary @"$tmp/bigbody" "http://127.0.0.1:$port/v1/demo/echo")
[ "$code" = 413 ] && grep -qF '"code":"too_large"' "$tmp/body" && ok "chunked body over the limit -> 413" ||
    fail "chunked body over the limit -> $code: $(head -c 300 "$tmp/body")"

echo "-- guest failures: their own statuses, and the next call is clean"
expect 500 '"code":"SBX_E_GUEST_ABORT"' POST /v1/hostile/abort '[7]'
grep -qF '"abort_code":7' "$tmp/body" || fail "abort without abort_code 7"
expect 502 '"code":"SBX_E_GUEST_FAULT"' POST /v1/hostile/null_read '[]'
grep -qF '"vector":14' "$tmp/body" || fail "fault without vector 14"
expect 504 '"code":"SBX_E_TIMEOUT"' POST /v1/hostile/spin '[]'
expect 200 '{"result":1}' POST /v1/hostile/counter '[]'
expect 200 '{"result":1}' POST /v1/hostile/counter '[]'

echo "-- no state leaks between requests: 24 concurrent counters, leftovers"
pids=
for i in $(seq 24); do
    "$curl" -s -H "$auth" -X POST --data-binary '[]' "http://127.0.0.1:$port/v1/demo/counter" \
        > "$tmp/c.$i" &
    pids="$pids $!"
done
wait $pids
n=0
for i in $(seq 24); do [ "$(cat "$tmp/c.$i")" = '{"result":2}' ] && n=$((n + 1)); done
[ "$n" = 24 ] && ok "24 concurrent counters all 2 (snapshot 1, + 1)" ||
    fail "counters: $n of 24 were 2: $(cat "$tmp"/c.*)"
expect 200 '{"result":"SECRET"}' POST /v1/demo/upper '["secret"]'
expect 200 '{"result":"000000000000"}' POST /v1/demo/peek '[6]'

echo "-- /metrics: every line valid Prometheus text, the counts add up"
"$curl" -s -H "$auth" -D "$tmp/hdr" "http://127.0.0.1:$port/metrics" > "$tmp/metrics"
grep -qi '^Content-Type: text/plain; version=0.0.4' "$tmp/hdr" || fail "/metrics content type"
bad=$(awk '
    /^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* / { next }
    /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*")*\})? -?[0-9][0-9.e+]*$/ { next }
    { print NR ": " $0 }' "$tmp/metrics")
[ -z "$bad" ] && ok "/metrics: $(wc -l < "$tmp/metrics") lines, all valid" || fail "/metrics lines: $bad"
m() { first "$1" < "$tmp/metrics"; }
[ "$(m 'snapbox_errors_total{kind="guest_fault"}')" = 1 ] || fail "guest_fault count"
[ "$(m 'snapbox_errors_total{kind="timeout"}')" = 1 ] || fail "timeout count"
[ "$(m 'snapbox_errors_total{kind="too_large"}')" = 2 ] || fail "too_large count"
[ "$(m 'snapbox_http_responses_total{status="401"}')" = 2 ] || fail "401 count"
[ "$(m 'snapbox_call_duration_seconds_count')" = "$(m 'snapbox_call_duration_seconds_bucket{le="+Inf"}')" ] ||
    fail "histogram count"
[ "$(m 'snapbox_pool_target{snapshot="demo"}')" = 2 ] || fail "pool target"
[ "$(m 'snapbox_calls_total{snapshot="hostile"}')" = 5 ] || fail "hostile calls"
[ "$(m 'process_resident_memory_bytes')" -gt 0 ] || fail "resident memory"
# 24 calls at once on 2 workers: the pool never holds more than --pool + --workers
alive=$(( $(m 'snapbox_pool_ready{snapshot="demo"}') + $(m 'snapbox_pool_taken{snapshot="demo"}') +
          $(m 'snapbox_pool_resetting{snapshot="demo"}') ))
[ "$alive" -le 4 ] && ok "demo pool: $alive sandboxes alive, at most 4" || fail "demo pool: $alive alive"
resets=$(m 'snapbox_pool_resets_total{snapshot="demo"}')
[ "${resets:-0}" -gt 0 ] && ok "pool resets: $resets" || fail "no pool resets"
stop

# spin runs to the deadline, long enough (15 s, even under TCG) to fill the queue behind it
echo "-- backpressure: 1 worker, a queue of 1; SIGTERM with calls in flight"
auth=
start queue hostile="$tmp/hostile.snap" --pool 1 --workers 1 --queue 1 --deadline 15000
"$curl" -s -o "$tmp/q1" -w '%{http_code}' -X POST --data-binary '[]' \
    "http://127.0.0.1:$port/v1/hostile/spin" > "$tmp/q1.code" &
p1=$!
wait_metric 'snapbox_workers_busy ' 1
"$curl" -s -o "$tmp/q2" -w '%{http_code}' -X POST --data-binary '[]' \
    "http://127.0.0.1:$port/v1/hostile/counter" > "$tmp/q2.code" &
p2=$!
wait_metric 'snapbox_queue_length ' 1
expect 503 '"code":"queue_full"' POST /v1/hostile/counter '[]'
grep -qi '^Retry-After: 1' "$tmp/hdr" || fail "503 without Retry-After"
kill -TERM "$pid"
wait $p1 $p2
[ "$(cat "$tmp/q1.code")" = 504 ] && ok "in flight at SIGTERM: spin answered 504" ||
    fail "spin in flight got $(cat "$tmp/q1.code"): $(cat "$tmp/q1")"
[ "$(cat "$tmp/q2.code")" = 200 ] && grep -qF '{"result":1}' "$tmp/q2" &&
    ok "queued at SIGTERM: counter answered 200" || fail "queued counter got $(cat "$tmp/q2.code"): $(cat "$tmp/q2")"
wait "$pid"; rc=$?; pid=
[ "$rc" = 0 ] && ok "queue: exit 0 after draining" || { fail "queue: exit $rc"; cat "$tmp/queue.err"; }
"$curl" -s -o /dev/null "http://127.0.0.1:$port/healthz" && fail "still answering after exit"

echo "-- strategies new and restore: the same answers"
for strat in new restore; do
    # restore under --json: the ready line is JSON
    start "$strat" demo="$tmp/demo.snap" hostile="$tmp/hostile.snap" --strategy "$strat" --pool 2 \
        --workers 2 $([ "$strat" = restore ] && echo --json)
    expect 200 '{"result":5}' POST /v1/demo/add '[2,3]'
    expect 200 '{"result":2}' POST /v1/demo/counter ''
    expect 200 '{"result":2}' POST /v1/demo/counter ''
    expect 502 '"code":"SBX_E_GUEST_FAULT"' POST /v1/hostile/null_read '[]'
    expect 200 '{"result":1}' POST /v1/hostile/counter '[]'
    expect 200 "\"strategy\":\"$strat\"" GET /v1
    stop
done

echo "-- start-up refusals"
"$cli" serve --listen 0.0.0.0:0 demo="$tmp/demo.snap" >/dev/null 2>"$tmp/err"
[ $? = 2 ] && grep -q 'listen-any' "$tmp/err" && ok "non-loopback without --listen-any: exit 2" ||
    fail "non-loopback address accepted without --listen-any"
"$cli" serve --listen 127.0.0.1:0 demo="$tmp/missing.snap" >/dev/null 2>"$tmp/err"
[ $? = 3 ] && ok "missing snapshot: exit 3" || fail "missing snapshot: $(cat "$tmp/err")"
"$cli" serve --listen 127.0.0.1:0 'bad name'="$tmp/demo.snap" >/dev/null 2>"$tmp/err"
[ $? = 2 ] && ok "bad NAME: exit 2" || fail "bad NAME: $(cat "$tmp/err")"
printf 'short\n' > "$tmp/short"
"$cli" serve --listen 127.0.0.1:0 --token-file "$tmp/short" demo="$tmp/demo.snap" >/dev/null 2>"$tmp/err"
[ $? = 2 ] && ok "short token: exit 2" || fail "short token: $(cat "$tmp/err")"

[ "$failed" = 0 ] && echo "test_serve: all passed"
exit "$failed"
