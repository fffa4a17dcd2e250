#!/bin/sh
# test_oci.sh - snapbox push and pull against real registries on loopback:
# Debian's docker-registry started here (a free port, its own storage and
# config), once over plain HTTP and once over TLS with a self-signed CA and
# htpasswd (bcrypt) Basic auth. Nothing is mocked; skopeo checks the artifact.
# usage: tests/test_oci.sh [BUILD_DIR]   (needs BUILD/snapbox and `deps.sh oci`;
# SNAPBOX_CLI names another build of the CLI, e.g. the sanitized one)
set -u
build=${1:-build}
cli=$(realpath "${SNAPBOX_CLI:-$build/snapbox}")
golden=$(realpath tests/golden/demo.snap)
tmp=$(mktemp -d /tmp/snapbox-oci.XXXXXX) || exit 1
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 1' INT TERM
failed=0
fail() { echo "test_oci: FAIL: $*"; failed=1; }
ok() { echo "test_oci: ok: $*"; }
for tool in docker-registry skopeo htpasswd openssl python3; do
    command -v "$tool" >/dev/null || { echo "test_oci: $tool missing (scripts/deps.sh oci)"; exit 1; }
done
# The golden snapshot's CPU facts are synthetic: pulls of it skip the CPU
# check (tests/test_oci_kvm.sh pulls real snapshots with it).
export SNAPBOX_CACHE="$tmp/cache" HOME="$tmp/home"
unset DOCKER_CONFIG SNAPBOX_REGISTRY_USER SNAPBOX_REGISTRY_PASSWORD XDG_CACHE_HOME
mkdir -p "$HOME"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_registry NAME PORT [tls | token TOKEN_PORT]: a registry with storage in $tmp/NAME; its
# log (access log included) in $tmp/NAME.log; its pid in $tmp/NAME.pid
start_registry() {
    name=$1 port=$2 dir=$tmp/$1
    mkdir -p "$dir/data"
    {
        printf 'version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n'
        printf 'storage:\n  filesystem:\n    rootdirectory: %s/data\n' "$dir"
        printf 'http:\n  addr: 127.0.0.1:%s\n' "$port"
        if [ "${3:-}" = tls ]; then
            printf '  tls:\n    certificate: %s/server.pem\n    key: %s/server.key\n' "$tmp" "$tmp"
            printf 'auth:\n  htpasswd:\n    realm: snapbox-test\n    path: %s/htpasswd\n' "$tmp"
        elif [ "${3:-}" = token ]; then
            printf 'auth:\n  token:\n    realm: http://127.0.0.1:%s/token\n' "$4"
            printf '    service: snapbox-registry\n    issuer: snapbox-issuer\n'
            printf '    rootcertbundle: %s/token.pem\n' "$tmp"
        fi
    } > "$dir/config.yml"
    docker-registry serve "$dir/config.yml" >>"$tmp/$name.log" 2>&1 &
    echo $! > "$tmp/$name.pid"
    pids="$pids $!"
    scheme=http; [ "${3:-}" = tls ] && scheme=https
    for _ in $(seq 100); do
        curl -sk -o /dev/null "$scheme://127.0.0.1:$port/v2/" && return 0
        sleep 0.1
    done
    echo "test_oci: the registry $name did not start:"; tail -5 "$tmp/$name.log"; exit 1
}

# expect CODE ARGS...: run snapbox; stdout in $tmp/out, stderr in $tmp/err
expect() {
    want=$1; shift
    "$cli" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
    got=$?
    if [ "$got" != "$want" ]; then
        fail "snapbox $* exited $got, expected $want"; sed 's/^/    /' "$tmp/err" "$tmp/out" | head -5
        return 1
    fi
    ok "($got) snapbox $*"
}
# field EXPR: a Python expression on the JSON document d in $tmp/out
field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$tmp/out" "$1"; }
check() { [ "$(field "$1")" = "$2" ] || fail "$1 is $(field "$1"), expected $2"; }
grep_err() { grep -q -- "$1" "$tmp/err" || fail "stderr lacks '$1': $(cat "$tmp/err")"; }
# The registry's access log lines for requests of a path
requests() { grep -c "\"$1 [^\"]*$2" "$tmp/$3.log"; }

# ---- plain HTTP on loopback ---------------------------------------------------
port=$(free_port); R=127.0.0.1:$port
start_registry plain "$port"

expect 0 push "$golden" "$R/snap/demo:v1" --json
check 'd["blobs_uploaded"]' 2
layer=$(field 'd["layer"]["digest"]'); config=$(field 'd["config"]["digest"]')
manifest=$(field 'd["digest"]')
expect 0 push "$golden" "oci://$R/snap/demo:v1" --json
check 'd["blobs_uploaded"]' 0
check 'd["blobs_skipped"]' 2
[ "$(requests PUT "/v2/snap/demo/blobs/uploads" plain)" = 2 ] || fail "a second push uploaded blobs again"

expect 0 pull "$R/snap/demo:v1" -o "$tmp/pulled.snap" --no-cpu-check --json
cmp -s "$tmp/pulled.snap" "$golden" || fail "pulled file differs from the pushed one"
check 'd["blobs_downloaded"]' 2
expect 0 pull "oci://$R/snap/demo:v1" -o "$tmp/again.snap" --no-cpu-check --json
check 'd["blobs_downloaded"]' 0
check 'd["bytes_downloaded"]' 0
cmp -s "$tmp/again.snap" "$golden" || fail "second pull differs"
[ "$(requests GET "/v2/snap/demo/blobs/$layer" plain)" = 1 ] || fail "the layer was downloaded twice"
expect 0 pull "$R/snap/demo@$manifest" --no-cpu-check --json
check 'd["bytes_downloaded"]' 0
expect 0 info "oci://$R/snap/demo:v1"
grep -q "format: *2" "$tmp/out" || fail "info oci:// says no format"

# skopeo sees an OCI manifest with our artifactType and config
skopeo inspect --raw --tls-verify=false "docker://$R/snap/demo:v1" > "$tmp/raw.json" &&
    grep -q '"artifactType":"application/vnd.snapbox.snapshot.v1"' "$tmp/raw.json" &&
    ok "skopeo inspect --raw shows the manifest" || fail "skopeo inspect --raw"
skopeo inspect --config --raw --tls-verify=false "docker://$R/snap/demo:v1" > "$tmp/config.json" &&
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["format"] == 2 and d["guest"]["version"]' "$tmp/config.json" &&
    ok "skopeo inspect --config --raw shows the config" || fail "skopeo inspect --config"
skopeo copy --insecure-policy --src-tls-verify=false --dest-tls-verify=false \
    "docker://$R/snap/demo:v1" "docker://$R/other/copy:c1" >/dev/null && ok "skopeo copy" || fail "skopeo copy"
expect 0 pull "$R/other/copy:c1" -o "$tmp/copy.snap" --cache "$tmp/cache-copy" --no-cpu-check
cmp -s "$tmp/copy.snap" "$golden" || fail "the skopeo copy pulls differently"
expect 0 verify "oci://$R/other/copy:c1" --cache "$tmp/cache-copy"

# chunked upload
expect 0 push "$golden" "$R/snap/chunked:v1" --chunk-size 4K --json
[ "$(requests PATCH "/v2/snap/chunked/blobs/uploads" plain)" = 3 ] || fail "no 3 PATCH chunks for 10326 bytes"
expect 0 pull "$R/snap/chunked:v1" -o "$tmp/chunked.snap" --no-cpu-check --cache "$tmp/cache-chunked"
cmp -s "$tmp/chunked.snap" "$golden" || fail "chunked push pulls differently"

# missing tag, bad reference, registry down
expect 22 pull "$R/snap/demo:nosuchtag" -o "$tmp/none.snap"
grep_err "not found"
[ ! -e "$tmp/none.snap" ] || fail "a failed pull left a file"
expect 2 pull "not a reference"
down=$(free_port)
expect 19 pull "127.0.0.1:$down/snap/demo:v1" -o "$tmp/none.snap"
grep_err "cannot reach the registry"
expect 19 push "$golden" "127.0.0.1:$down/snap/demo:v1"

# manifests a registry may hold that are not what they claim: put by hand
put_manifest() { # REPO:TAG PYTHON-EDIT-OF-m
    python3 - "$tmp/raw.json" "$2" > "$tmp/edited.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
exec(sys.argv[2])
sys.stdout.write(json.dumps(m))
EOF
    curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$tmp/edited.json" "http://$R/v2/${1%%:*}/manifests/${1#*:}" >/dev/null ||
        fail "could not put the manifest $1"
}
put_manifest snap/demo:notours 'm["config"]["mediaType"] = "application/vnd.oci.image.config.v1+json"'
expect 24 pull "$R/snap/demo:notours" -o "$tmp/none.snap" --no-cpu-check
grep_err "not a snapbox snapshot"
put_manifest snap/demo:huge 'm["layers"][0]["size"] = 3 << 30'
expect 14 pull "$R/snap/demo:huge" -o "$tmp/none.snap" --no-cpu-check --cache "$tmp/cache-huge"
grep_err "over the limit"
put_manifest snap/demo:big 'm["annotations"]["padding"] = "x" * (1536 << 10)'
expect 14 pull "$R/snap/demo:big" -o "$tmp/none.snap" --no-cpu-check
grep_err "over the limit"
[ ! -e "$tmp/none.snap" ] || fail "a refused manifest left a file"

# an incompatible snapshot (its guest from another patch release) is refused
# from the config: the layer is never fetched
python3 - "$golden" "$tmp/other.snap" <<'EOF'
import ctypes, struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
hsize = struct.unpack_from('<I', b, 12)[0]
major, minor, patch = struct.unpack_from('<III', b, 80)   # header.guest
struct.pack_into('<I', b, 88, patch + 1)
s = b'%d.%d.%d' % (major, minor, patch + 1)
b[96:128] = s + bytes(32 - len(s))
struct.pack_into('<Q', b, 16, 0)                         # header_xxh3, over the header
x = ctypes.CDLL('libxxhash.so.0'); x.XXH3_64bits.restype = ctypes.c_uint64
struct.pack_into('<Q', b, 16, x.XXH3_64bits(bytes(b[:hsize]), ctypes.c_size_t(hsize)))
open(sys.argv[2], 'wb').write(b)
EOF
expect 0 push "$tmp/other.snap" "$R/snap/other:v1" --json
other_layer=$(field 'd["layer"]["digest"]')
expect 5 pull "$R/snap/other:v1" -o "$tmp/other-pulled.snap" --no-cpu-check --cache "$tmp/cache-other" --json
check 'd["error"]["code"]' SBX_E_VERSION
[ "$(requests GET "/blobs/$other_layer" plain)" = 0 ] || fail "the refused layer was downloaded"
[ ! -e "$tmp/cache-other/blobs/sha256/${other_layer#sha256:}" ] || fail "the refused layer is cached"
[ ! -e "$tmp/other-pulled.snap" ] || fail "a refused pull left a file"
expect 0 pull "$R/snap/other:v1" --policy relaxed --no-cpu-check --cache "$tmp/cache-other" --json
check 'd["blobs_downloaded"]' 1

# a blob corrupted in the registry's storage: digest mismatch, nothing kept
data=$tmp/plain/data/docker/registry/v2/blobs/sha256/$(echo "${layer#sha256:}" | cut -c1-2)/${layer#sha256:}/data
flip() { python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[5000]^=0xff; open(p,"wb").write(b)' "$1"; }
flip "$data"
expect 23 pull "$R/snap/demo:v1" -o "$tmp/corrupt.snap" --no-cpu-check --cache "$tmp/cache-corrupt" --json
check 'd["error"]["code"]' SBX_E_DIGEST
[ ! -e "$tmp/corrupt.snap" ] || fail "a corrupt pull left the output file"
[ ! -e "$tmp/cache-corrupt/blobs/sha256/${layer#sha256:}" ] || fail "a corrupt blob entered the cache"
[ -z "$(find "$tmp/cache-corrupt" -name '*.tmp*')" ] || fail "a corrupt pull left a temporary file"
flip "$data" # repaired: the registry links the stored blob into the next repository

# the registry killed in the middle of a push, then a rerun
"$cli" push "$golden" "$R/snap/killed:v1" --chunk-size 2K --limit-rate 2K --json \
    >"$tmp/out" 2>"$tmp/err" &
push_pid=$!
sleep 2
kill -9 "$(cat "$tmp/plain.pid")"
wait "$push_pid"
got=$?
[ "$got" = 20 ] && ok "(20) a push cut off by the registry's death: $(field 'd["error"]["message"]')" ||
    fail "a cut-off push exited $got: $(cat "$tmp/out" "$tmp/err")"
start_registry plain "$port"
expect 0 push "$golden" "$R/snap/killed:v1" --json
expect 0 pull "$R/snap/killed:v1" -o "$tmp/killed.snap" --no-cpu-check --cache "$tmp/cache-killed"
cmp -s "$tmp/killed.snap" "$golden" || fail "the rerun push pulls differently"

# a registry that keeps failing: 503 to every request, retried with backoff, bounded
fport=$(free_port)
python3 - "$fport" > "$tmp/flaky.log" 2>&1 <<'EOF' &
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        print('request', self.path, flush=True)
        self.send_response(503); self.send_header('Content-Length', '0'); self.end_headers()
    def log_message(self, *a): pass
HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
EOF
pids="$pids $!"
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$fport/" && break; sleep 0.1; done
: > "$tmp/flaky.log"
expect 20 pull "127.0.0.1:$fport/snap/demo:v1" -o "$tmp/none.snap"
grep_err "HTTP 503, 5 times"
[ "$(grep -c request "$tmp/flaky.log")" = 5 ] || fail "not 5 tries of a 503: $(cat "$tmp/flaky.log")"

# ---- TLS with a self-signed CA, and htpasswd Basic auth ---------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=snapbox-test-ca \
    -keyout "$tmp/ca.key" -out "$tmp/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$tmp/server.key" \
    -out "$tmp/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$tmp/san.ext"
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
    -days 2 -extfile "$tmp/san.ext" -out "$tmp/server.pem" 2>/dev/null
htpasswd -Bbn tester s3cret > "$tmp/htpasswd"
tport=$(free_port); T=127.0.0.1:$tport
start_registry tls "$tport" tls

expect 21 push "$golden" "$T/snap/demo:v1" --ca-file "$tmp/ca.pem"
grep_err "SNAPBOX_REGISTRY_USER"
expect 19 push "$golden" "$T/snap/demo:v1"
grep_err "ca-file"
export SNAPBOX_REGISTRY_USER=tester SNAPBOX_REGISTRY_PASSWORD=wrong
expect 21 push "$golden" "$T/snap/demo:v1" --ca-file "$tmp/ca.pem"
grep_err "refused"
SNAPBOX_REGISTRY_PASSWORD=s3cret
expect 0 push "$golden" "$T/snap/demo:v1" --ca-file "$tmp/ca.pem" --json
check 'd["blobs_uploaded"]' 2
unset SNAPBOX_REGISTRY_USER SNAPBOX_REGISTRY_PASSWORD
# credentials from Docker's config.json
mkdir -p "$tmp/docker"
printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$T" "$(printf tester:s3cret | base64)" > "$tmp/docker/config.json"
export DOCKER_CONFIG=$tmp/docker
expect 0 pull "$T/snap/demo:v1" -o "$tmp/tls.snap" --ca-file "$tmp/ca.pem" \
    --no-cpu-check --cache "$tmp/cache-tls"
cmp -s "$tmp/tls.snap" "$golden" || fail "TLS pull differs"
unset DOCKER_CONFIG
skopeo inspect --raw --cert-dir /nonexistent --tls-verify=false --creds tester:s3cret \
    "docker://$T/snap/demo:v1" | grep -q snapbox && ok "skopeo inspect over TLS" || fail "skopeo over TLS"

# ---- Bearer tokens from a token service (tests/oci-token-server.py) ------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=snapbox-token-issuer \
    -keyout "$tmp/token.key" -out "$tmp/token.pem" 2>/dev/null
kport=$(free_port) bport=$(free_port); B=127.0.0.1:$bport
python3 tests/oci-token-server.py "$kport" "$tmp/token.key" "$tmp/token.pem" snapbox-issuer \
    tester:s3cret > "$tmp/tokens.log" 2>&1 &
pids="$pids $!"
start_registry token "$bport" token "$kport"
for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$kport/token")" = 401 ] && break
    sleep 0.1
done
expect 21 push "$golden" "$B/snap/demo:v1"
grep_err "refused"
export SNAPBOX_REGISTRY_USER=tester SNAPBOX_REGISTRY_PASSWORD=s3cret
expect 0 push "$golden" "$B/snap/demo:v1" --json
check 'd["blobs_uploaded"]' 2
expect 0 pull "$B/snap/demo:v1" -o "$tmp/token.snap" --no-cpu-check --cache "$tmp/cache-token"
cmp -s "$tmp/token.snap" "$golden" || fail "pull with a Bearer token differs"
unset SNAPBOX_REGISTRY_USER SNAPBOX_REGISTRY_PASSWORD
# the registry orders the challenge's actions as it likes (a Go map): either order
grep -qE "scope.*repository:snap/demo:(pull,push|push,pull).*authorised" "$tmp/tokens.log" &&
    ok "a push and a pull through Bearer tokens" || fail "no authorised token request: $(cat "$tmp/tokens.log")"

[ "$failed" = 0 ] && echo "test_oci: all passed"
exit "$failed"
