#!/bin/sh
# oci-kvm-job.sh GUESTS SNAPBOX REGISTRY SKOPEO - run where /dev/kvm runs
# snapbox guests (inside the KVM test VM: tests/test_oci_kvm.sh carries the
# programs in): a registry on loopback, a snapshot made here in KVM, pushed,
# then restored and called by reference (oci://), from a pulled file, and
# from a skopeo copy in another repository, and served by reference. Exits non-zero on any failure.
set -u
guests=$1 cli=$2 reg=$3 skopeo=$4
export TMPDIR=${TMPDIR:-/tmp} HOME=${HOME:-/tmp}
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up 2>/dev/null || true
work=$(mktemp -d) || exit 1
regpid=
trap '[ -n "$regpid" ] && kill "$regpid" 2>/dev/null; rm -rf "$work"' EXIT
export SNAPBOX_CACHE=$work/cache
failed=0
fail() { echo "oci-kvm: FAIL: $*"; failed=1; }
ok() { echo "oci-kvm: ok: $*"; }
port=${OCI_KVM_PORT:-5789}
R=127.0.0.1:$port

printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s/data\nhttp:\n  addr: %s\n' \
    "$work" "$R" > "$work/config.yml"
"$reg" serve "$work/config.yml" > "$work/registry.log" 2>&1 &
regpid=$!
i=0
until wget -q -O /dev/null "http://$R/v2/" 2>/dev/null; do
    i=$((i + 1))
    [ "$i" -lt 100 ] || { echo "oci-kvm: the registry did not start"; tail -5 "$work/registry.log"; exit 1; }
    sleep 0.2
done
ok "docker-registry on $R"

"$cli" create "$guests/demo.elf" -o "$work/demo.snap" >/dev/null || { fail "snapbox create"; exit 1; }
"$cli" push "$work/demo.snap" "$R/snap/demo:v1" >/dev/null && ok "push" || fail "push"
out=$("$cli" call "oci://$R/snap/demo:v1" add 2 3 2>"$work/err") && [ "$out" = 5 ] &&
    ok "call oci://$R/snap/demo:v1 add 2 3 = $out (pulled header-first, restored in KVM)" ||
    fail "call oci:// gave '$out': $(cat "$work/err")"
# the config was judged against this KVM's CPU, not left to the restore
! grep -q "CPU check left" "$work/err" && ok "the CPU judged from the config" ||
    fail "the CPU check was skipped: $(cat "$work/err")"
"$cli" pull "$R/snap/demo:v1" -o "$work/pulled.snap" >/dev/null && cmp "$work/pulled.snap" "$work/demo.snap" &&
    ok "pull -o: byte-identical" || fail "pull -o"
out=$("$cli" call "$work/pulled.snap" add 40 2) && [ "$out" = 42 ] && ok "call of the pulled file: $out" ||
    fail "call of the pulled file gave '$out'"
"$skopeo" copy --insecure-policy --src-tls-verify=false --dest-tls-verify=false \
    "docker://$R/snap/demo:v1" "docker://$R/copied/demo:c1" >/dev/null && ok "skopeo copy" || fail "skopeo copy"
out=$("$cli" call "oci://$R/copied/demo:c1" add 1 1 --cache "$work/cache2") && [ "$out" = 2 ] &&
    ok "call of the skopeo copy by reference: $out" || fail "call of the skopeo copy gave '$out'"
# serve by reference: the snapshot comes from the registry (the cache by now)
"$cli" serve "demo=oci://$R/snap/demo:v1" --listen 127.0.0.1:0 > "$work/serve.out" 2>&1 &
spid=$!
sport=
i=0
while [ -z "$sport" ] && [ "$i" -lt 150 ] && kill -0 "$spid" 2>/dev/null; do
    sleep 0.2
    i=$((i + 1))
    sport=$(sed -n 's/.*listening on .* (port \([0-9]*\)).*/\1/p' "$work/serve.out")
done
out=$(wget -q -O - --post-data '[20, 22]' "http://127.0.0.1:$sport/v1/demo/add" 2>&1)
[ "$out" = '{"result":42}' ] && ok "serve demo=oci://$R/snap/demo:v1: POST add [20, 22] = $out" ||
    fail "serve by reference answered '$out': $(cat "$work/serve.out")"
kill -TERM "$spid" 2>/dev/null
wait "$spid" && ok "serve exited 0 on SIGTERM" || fail "serve did not exit 0 on SIGTERM"
[ "$failed" = 0 ] && echo "oci-kvm: all passed"
exit "$failed"
