#!/bin/sh
# test_cli.sh - the snapbox command line without KVM: --help on every command,
# usage errors (exit 2), --json output that parses (strict UTF-8) whatever bytes
# a file name, function name or version string holds, version verdicts.
# usage: tests/test_cli.sh [BUILD_DIR]   (needs BUILD/snapbox, BUILD/guests and
# the fuzz seeds: `make all build/fuzz/seeds/.stamp`)
set -u
build=${1:-build}
cli=$build/snapbox
guests=$build/guests
seed=$build/fuzz/seeds/fuzz_snap_header/demo.elf-lz4.snap
tmp=$(mktemp -d /tmp/snapbox-cli.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
failed=0
fail() { echo "test_cli: FAIL: $*"; failed=1; }

# expect CODE ARGS...: run the CLI; stdout in $tmp/out, stderr in $tmp/err
expect() {
    want=$1; shift
    "$cli" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
    got=$?
    if [ "$got" != "$want" ]; then
        fail "snapbox $* exited $got, expected $want"; sed 's/^/    /' "$tmp/err" | head -5
        return 1
    fi
    echo "test_cli: ok ($got): snapbox $*"
}

# json [PYTHON_CONDITION...]: $tmp/out is one JSON document in valid UTF-8 and
# each condition holds (d: the document, keys: every key at any depth)
json() {
    python3 - "$tmp/out" "$@" <<'EOF' || { fail "bad JSON from the last command:"; head -c 600 "$tmp/out"; echo; }
import json, sys
raw = open(sys.argv[1], 'rb').read()
d = json.loads(raw.decode('utf-8'))          # strict: no invalid UTF-8 passes
assert raw.endswith(b'\n') and raw.count(b'\n') == 1, 'not one line'
keys = set()
def walk(o):
    if isinstance(o, dict):
        keys.update(o); [walk(v) for v in o.values()]
    elif isinstance(o, list):
        [walk(v) for v in o]
walk(d)
for cond in sys.argv[2:]:
    assert eval(cond), cond
EOF
}

grep_out() { grep -q -- "$1" "$tmp/out" || fail "stdout lacks '$1'"; }
grep_err() { grep -q -- "$1" "$tmp/err" || fail "stderr lacks '$1'"; }

# rewrite_header SNAP PYTHON: run PYTHON on bytearray h (the header), then
# fix header_xxh3 (XXH3-64 of the header with that field zero, libxxhash)
rewrite_header() {
    python3 - "$1" "$2" <<'EOF'
import ctypes, struct, sys
path, code = sys.argv[1], sys.argv[2]
buf = bytearray(open(path, 'rb').read())
hsize = struct.unpack_from('<I', buf, 12)[0]
h = buf[:hsize]
exec(code)
h[16:24] = bytes(8)
x = ctypes.CDLL('libxxhash.so.0')
x.XXH3_64bits.restype = ctypes.c_uint64
x.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
struct.pack_into('<Q', h, 16, x.XXH3_64bits(bytes(h), len(h)))
buf[:hsize] = h
open(path, 'wb').write(buf)
EOF
}

for f in "$cli" "$guests/demo.elf" "$seed"; do
    [ -e "$f" ] || { echo "test_cli: $f missing (make all $build/fuzz/seeds/.stamp)"; exit 1; }
done

echo "-- help: every command, three spellings, the same text"
expect 0 --help && grep_out "exit codes"
expect 0 help && grep_out "snapbox help \[COMMAND\]"
for c in inspect run create info verify call serve; do
    expect 0 "$c" --help && grep_out "^usage: snapbox $c " && cp "$tmp/out" "$tmp/help1"
    expect 0 "$c" -h && { cmp -s "$tmp/out" "$tmp/help1" || fail "$c -h differs from --help"; }
    expect 0 help "$c" && { cmp -s "$tmp/out" "$tmp/help1" || fail "help $c differs from --help"; }
    # every command loads a guest or a snapshot: the common options everywhere
    for o in --json "--policy POLICY" --relaxed --require-note; do grep_out "$o"; done
done
expect 2 help nosuch
expect 2 nosuch

echo "-- usage errors: exit 2, naming the option"
for c in inspect run create info verify call serve; do
    expect 2 "$c" --no-such-option x y && grep_err "'--no-such-option'"
    expect 2 "$c" --no-such-option --json x y && json "d['error']['code'] == 'usage'" \
        "d['error']['exit'] == 2" "'--no-such-option' in d['error']['message']"
done
expect 2 call "$seed" add --requests && grep_err "needs a value"
expect 2 call "$seed" add --requests --time && grep_err "needs a value"
expect 2 call "$seed" add --json --requests && json "d['error']['exit'] == 2"
expect 2 create "$guests/demo.elf" -o && grep_err "needs a value"
expect 2 serve && grep_err "missing arguments"
expect 2 serve d="$seed" --strategy bogus && grep_err "new, restore or reuse"
expect 2 serve d="$seed" --workers 0 && grep_err "workers wants"
expect 2 serve d="$seed" --listen nonsense && grep_err "HOST:PORT"
expect 2 serve d="$seed" --listen 10.1.2.3:8080 && grep_err "listen-any"
expect 2 serve d="$seed" --listen host.example:80 && grep_err "numeric"
expect 2 serve d="$seed" --max-body 0 && grep_err "max-body"
expect 2 create "$guests/demo.elf" && grep_err "missing -o"
expect 2 run "$guests/demo.elf" add --mem && grep_err "needs a value"
expect 2 info "$seed" --policy && grep_err "needs a value"
expect 2 info "$seed" --policy strict && grep_err "exact, relaxed or abi"
expect 2 info "$seed" --json=yes && grep_err "takes no value"
expect 2 info && grep_err "missing arguments"
expect 2 info "$seed" "$seed"
expect 2 call "$seed" add 1 -5 && grep_err "after '--'"
expect 2 run "$guests/demo.elf" f 1 2 3 4 5 6 7 8 9 && grep_err "at most"

echo "-- inspect"
expect 0 inspect "$guests/demo.elf" && grep_out "^verdict:   accepted under policy exact$"
expect 0 inspect --json "$guests/demo.elf" && json "d['verdict'] == 'accepted'" \
    "d['policy'] == 'exact'" "len(d['segments']) >= 1"
expect 0 inspect --policy abi --json "$guests/plain.elf" && json "d['guest_version'] is None" \
    "d['policy'] == 'abi'"
expect 6 inspect --require-note --json "$guests/plain.elf" && json "d['verdict'] == 'rejected'" \
    "d['error']['code'] == 'SBX_E_NO_NOTE'" "d['error']['exit'] == 6"
expect 3 inspect --json "$tmp/missing.elf" && json "d['error']['code'] == 'SBX_E_IO'"
head -c 100 "$guests/demo.elf" > "$tmp/truncated.elf"
expect 4 inspect --json "$tmp/truncated.elf" && json "d['error']['exit'] == 4"

echo "-- info and verify on a good snapshot"
cp "$seed" "$tmp/good.snap"
expect 0 info "$tmp/good.snap" && grep_out "^verdict: *accepted under policy exact$"
expect 0 info --relaxed "$tmp/good.snap" && grep_out "accepted under policy relaxed"
expect 0 info --json "$tmp/good.snap" && json "d['verdict'] == 'accepted'" \
    "'add' in [f['name'] for f in d['functions']]" "d['format'] >= 1"
expect 0 verify "$tmp/good.snap" && grep_out "^verdict: accepted under policy exact$"
expect 0 verify --json --policy abi "$tmp/good.snap" && json "d['ok'] is True" "d['policy'] == 'abi'"
cp "$seed" "$tmp/corrupt.snap"
printf 'X' | dd of="$tmp/corrupt.snap" bs=1 seek=$(($(wc -c < "$seed") - 100)) conv=notrunc 2>/dev/null
expect 17 verify "$tmp/corrupt.snap"
expect 17 verify --json "$tmp/corrupt.snap" && json "d['error']['code'] == 'SBX_E_SNAP_CORRUPT'" \
    "d['error']['exit'] == 17"
expect 16 info --json "$guests/demo.elf" && json "d['error']['code'] == 'SBX_E_SNAP_FORMAT'"

echo "-- another guest version: described, exit 0, the verdict says no; call refuses (exit 5)"
cp "$seed" "$tmp/other.snap"
# guest version (at offset 80: major, minor, patch, abi, string[32]) 0.1.7 whose
# string holds a quote and a byte that is not UTF-8
rewrite_header "$tmp/other.snap" "
struct.pack_into('<I', h, 88, 7)
h[96:128] = b'0.1.7\", \"evil\": \"\xff'.ljust(32, b'\0')"
expect 0 info "$tmp/other.snap" && grep_out "^verdict: *rejected under policy exact: "
expect 0 info --json "$tmp/other.snap" && json "d['verdict'] == 'rejected'" "'evil' not in keys" \
    "'\ufffd' in d['guest_version']"
expect 0 info --json --policy relaxed "$tmp/other.snap" && json "d['verdict'] == 'accepted'"
expect 0 verify "$tmp/other.snap" && grep_out "^verdict: rejected under policy exact: "
expect 0 verify --json "$tmp/other.snap" && json "d['verdict'] == 'rejected'" "'evil' not in keys"
expect 5 call "$tmp/other.snap" add 1 2 && grep_err "0.1.7"
expect 5 call --json "$tmp/other.snap" add 1 2 && json "d['error']['code'] == 'SBX_E_VERSION'" \
    "d['error']['exit'] == 5" "'evil' not in keys"

echo "-- hostile names: valid JSON, nothing injected"
evil='x", "evil": "1'
cp "$seed" "$tmp/$evil$(printf '\377').snap"
expect 0 info --json "$tmp/$evil$(printf '\377').snap" && json "'evil' not in keys" \
    "d['file'].endswith('\ufffd.snap')"
cp "$guests/demo.elf" "$tmp/$evil.elf"
expect 0 inspect --json "$tmp/$evil.elf" && json "'evil' not in keys" "d['file'].endswith('1.elf')"
cp "$seed" "$tmp/evilfunc.snap"
# function 0's name rewritten in the FUNCTIONS section; every offset, size and
# checksum after it fixed up (docs/snapshot-format.md), so only the name is wrong
rename_function0() {
    python3 - "$1" "$2" <<'EOF'
import ctypes, struct, sys
path, name = sys.argv[1], sys.argv[2].encode()
x = ctypes.CDLL('libxxhash.so.0')
x.XXH3_64bits.restype = ctypes.c_uint64
x.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
xxh = lambda b: x.XXH3_64bits(bytes(b), len(b))
buf = bytearray(open(path, 'rb').read())
hsize = struct.unpack_from('<I', buf, 12)[0]
soff, ssize = struct.unpack_from('<QQ', buf, 200)
nsec, nchunks = struct.unpack_from('<II', buf, 224)
secs, at = b'', soff
for _ in range(nsec):
    typ, flags, length = struct.unpack_from('<IIQ', buf, at)
    payload = bytes(buf[at + 24:at + 24 + length])
    if typ == 5:  # FUNCTIONS: u32 count, then u16 name length, name, ret, nargs, types
        old = struct.unpack_from('<H', payload, 4)[0]
        assert payload[6:6 + old] == b'add', 'function 0 is not add'
        payload = payload[:4] + struct.pack('<H', len(name)) + name + payload[6 + old:]
    at += 24 + ((length + 7) & ~7)
    secs += struct.pack('<IIQQ', typ, flags, len(payload), xxh(payload))
    secs += payload + bytes(-len(payload) & 7)
rest = buf[soff + ssize:]
shift = len(secs) - ssize
index = bytearray(rest[:nchunks * 40])
for i in range(nchunks):
    off = struct.unpack_from('<Q', index, i * 40 + 16)[0]
    struct.pack_into('<Q', index, i * 40 + 16, off + shift)
h = bytearray(buf[:hsize])
struct.pack_into('<QQQ', h, 200, soff, len(secs), xxh(secs))
data_off = struct.unpack_from('<Q', h, 248)[0] + shift
struct.pack_into('<QQQ', h, 232, soff + len(secs), xxh(index), data_off)
out = h + secs + index + rest[nchunks * 40:]
struct.pack_into('<Q', out, 24, len(out))
struct.pack_into('<Q', out, 16, 0)
struct.pack_into('<Q', out, 16, xxh(out[:hsize]))
open(path, 'wb').write(out)
EOF
}
# the control: a name inside the rule, same fix-ups, is a good file
cp "$seed" "$tmp/renamed.snap"
rename_function0 "$tmp/renamed.snap" renamed_fn
expect 0 verify --json "$tmp/renamed.snap" && json "d['ok'] is True"
expect 0 info --json "$tmp/renamed.snap" && json "d['functions'][0]['name'] == 'renamed_fn'"
rename_function0 "$tmp/evilfunc.snap" 'x", "evil": "1'
# a function name the one name rule refuses: the file is corrupt (17); a
# library that still read it must give JSON without the injected key
"$cli" info --json "$tmp/evilfunc.snap" >"$tmp/out" 2>"$tmp/err"
rc=$?
echo "test_cli: ($rc): snapbox info --json evilfunc.snap"
case $rc in
    0) json "'evil' not in keys" "d['functions'][0]['name'] == 'x\", \"evil\": \"1'" ;;
    17) json "d['error']['exit'] == 17" "'evil' not in keys" ;;
    *) fail "info on a hostile function name exited $rc" ;;
esac
expect 17 verify --json "$tmp/evilfunc.snap" && json "d['error']['exit'] == 17" "'evil' not in keys"

# coredump: a snapshot as an ELF core file, without KVM; bad input refused
expect 0 coredump "$seed" -o "$tmp/seed.core" && grep_out "seed.core: core file of"
head -c 4 "$tmp/seed.core" | od -An -c | grep -q 'E   L   F' || fail "seed.core is not ELF"
expect 0 coredump --json "$seed" -o "$tmp/seed2.core" && json "d['truncated'] is False" "d['core'].endswith('seed2.core')"
expect 0 coredump "$seed" -o "$tmp/cut.core" --core-max 16K && grep_out "left out"
expect 14 coredump "$seed" -o "$tmp/tiny.core" --core-max 100 && grep_err "core_dump_max_bytes"
[ -e "$tmp/tiny.core" ] && fail "a refused core file was left behind"
expect 2 coredump "$seed" && grep_err "-o FILE.core"
expect 16 coredump "$guests/demo.elf" -o "$tmp/x.core"
expect 3 coredump "$seed" -o "$tmp/no/such/dir/x.core"
expect 2 coredump --json "$seed" -o "$tmp/x.core" --core-max 0 && json "d['error']['code'] == 'usage'"
# the gdb stub: loopback only, refused before any KVM work; not with --requests
expect 2 run --gdb 0.0.0.0:1234 "$guests/demo.elf" add 1 2 && grep_err "loopback address only"
expect 2 run --gdb 127.0.0.1 "$guests/demo.elf" add 1 2 && grep_err "not HOST:PORT"
expect 2 call --gdb 127.0.0.1:1234 --requests 2 "$seed" add 1 2 && grep_err "does not go with --requests"
expect 2 call --core-dir "$tmp" --requests 2 "$seed" add 1 2 && grep_err "needs --no-seccomp"
expect 2 run --core-files 0 "$guests/demo.elf" add 1 2

if [ "$failed" = 0 ]; then echo "test_cli: all passed"; else echo "test_cli: FAILED"; fi
exit $failed
