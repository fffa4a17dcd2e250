#!/bin/sh
# test_install.sh - use snapbox as a user would: `make install` into a scratch
# DESTDIR, then, from another directory, build a C and a C++ program with
# pkg-config alone, run them against the installed shared library, read the
# installed man pages, and check that `make uninstall` removes every file.
# Run from the repository root (`make check-install`); MAKE and BUILD come
# from the Makefile.
set -eu
MAKE=${MAKE:-make}
BUILD=${BUILD:-build}
CC=${CC:-cc}
CXX=${CXX:-g++}
top=$(pwd)
version=$(tr -d ' \n' < VERSION)
IFS=. read -r major minor patch <<EOV
$version
EOV
number=$((major * 10000 + minor * 100 + patch))

T=$(mktemp -d)   # the DESTDIR
W=$(mktemp -d)   # where the user's programs are built
trap 'rm -rf "$T" "$W"' EXIT INT TERM
errors=0
fail() { echo "test_install: FAIL: $*" >&2; errors=$((errors + 1)); }
die() { echo "test_install: FAIL: $*" >&2; exit 1; }
ok() { echo "test_install: ok: $*"; }

# ---- make install --------------------------------------------------------------
"$MAKE" --no-print-directory install DESTDIR="$T" PREFIX=/usr BUILD="$BUILD" > "$W/install.log" 2>&1 ||
    { cat "$W/install.log" >&2; die "make install DESTDIR=$T PREFIX=/usr failed"; }
lib=$T/usr/lib
for f in bin/snapbox lib/libsnapbox.a "lib/libsnapbox.so.$version" include/snapbox.h \
         include/sbx_abi.h include/snapbox_version.h include/snapbox_oci.h lib/pkgconfig/snapbox.pc \
         share/man/man1/snapbox.1 share/man/man3/libsnapbox.3; do
    [ -f "$T/usr/$f" ] || fail "make install did not install /usr/$f"
done
[ "$(readlink "$lib/libsnapbox.so.$major")" = "libsnapbox.so.$version" ] ||
    fail "/usr/lib/libsnapbox.so.$major is not a link to libsnapbox.so.$version"
[ "$(readlink "$lib/libsnapbox.so")" = "libsnapbox.so.$major" ] ||
    fail "/usr/lib/libsnapbox.so is not a link to libsnapbox.so.$major"
if [ ! -x "$T/usr/bin/snapbox" ] || [ "$("$T/usr/bin/snapbox" --version | cut -d' ' -f2)" != "$version" ]; then
    fail "the installed snapbox --version does not say $version"
fi

# ---- the shared library: SONAME and exported symbols -----------------------------
readelf -d "$lib/libsnapbox.so.$version" | grep -q "Library soname: \[libsnapbox.so.$major\]" ||
    fail "libsnapbox.so.$version has no SONAME libsnapbox.so.$major"
sed -n 's/^SBX_API[^(]*[ *]\(sbx_[a-z0-9_]*\)(.*/\1/p' "$T/usr/include/snapbox.h" \
    "$T/usr/include/snapbox_oci.h" | sort > "$W/declared"
nm -D --defined-only "$lib/libsnapbox.so.$version" | awk '$2 == "T" { print $3 }' > "$W/exported@"
sed 's/@.*//' "$W/exported@" | sort > "$W/exported"
[ -s "$W/declared" ] || fail "no SBX_API function found in the installed snapbox.h"
if ! diff "$W/declared" "$W/exported" > "$W/symdiff"; then
    cat "$W/symdiff" >&2
    fail "the functions libsnapbox.so exports (>) differ from the SBX_API ones in snapbox.h and snapbox_oci.h (<)"
fi
grep -v "@@SNAPBOX_" "$W/exported@" > "$W/unversioned" &&
    { cat "$W/unversioned" >&2; fail "exported functions without a SNAPBOX_ version node"; }
[ "$errors" = 0 ] && ok "installed files, links, SONAME libsnapbox.so.$major, $(wc -l < "$W/declared") versioned exports"

# ---- pkg-config -----------------------------------------------------------------
PKG_CONFIG_PATH=$lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
PKG_CONFIG_SYSROOT_DIR=$T
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
unset CPATH C_INCLUDE_PATH CPLUS_INCLUDE_PATH LIBRARY_PATH 2>/dev/null || true
pcv=$(pkg-config --modversion snapbox) || die "pkg-config does not find the installed snapbox.pc"
[ "$pcv" = "$version" ] || fail "pkg-config --modversion snapbox says '$pcv', VERSION says '$version'"
flags=$(pkg-config --cflags --libs snapbox) || die "pkg-config --cflags --libs snapbox failed"
case " $flags " in
    *" -I$T/usr/include "*) ;;
    *) fail "pkg-config --cflags snapbox does not point into the install: $flags" ;;
esac
case "$flags" in
    *"$top"*) fail "pkg-config flags point into the source tree: $flags" ;;
esac
[ "$errors" = 0 ] && ok "pkg-config: $flags"

# ---- a C and a C++ program, built from another directory ----------------------------
cat > "$W/prog.c" <<'EOS'
#include <stdio.h>
#include <snapbox.h>

int main(void)
{
    struct sbx_version v;
    sbx_host_version(&v);
    printf("%s %u %s %u %s\n", SBX_VERSION_STRING, (unsigned)SBX_VERSION_NUMBER,
           sbx_version_string(), sbx_version_number(), v.string);
    /* Reach the loader (libelf, xxHash) and the snapshot code (LZ4) too. */
    struct sbx_guest *g = NULL;
    struct sbx_template *t = NULL;
    if (sbx_guest_open("/nonexistent/guest.elf", &g, NULL) != SBX_E_IO ||
        sbx_template_open("/nonexistent/file.snap", NULL, &t, NULL) != SBX_E_IO)
        return 1;
    return 0;
}
EOS
cp "$W/prog.c" "$W/prog.cc"
expect="$version $number $version $number $version"
build_and_run() { # NAME COMPILER FLAGS... -- compile prog.NAME, run it, check its output
    name=$1; comp=$2; shift 2
    # shellcheck disable=SC2046
    if ! (cd "$W" && "$comp" "$@" $(pkg-config --cflags snapbox) -o "prog-$name" "prog.$name" \
              $(pkg-config --libs snapbox)) > "$W/$name.log" 2>&1; then
        cat "$W/$name.log" >&2
        fail "$comp: a program including the installed snapbox.h does not build (prog.$name)"
        return 0
    fi
    readelf -d "$W/prog-$name" | grep -q "Shared library: \[libsnapbox.so.$major\]" ||
        fail "prog.$name does not link against libsnapbox.so.$major"
    out=$(cd / && LD_LIBRARY_PATH=$lib "$W/prog-$name") || { fail "prog.$name exits with $?"; return 0; }
    [ "$out" = "$expect" ] ||
        { fail "prog.$name prints '$out', expected '$expect' (macro, number, runtime, runtime number, host)"; return 0; }
    ok "$comp: prog.$name built with pkg-config alone prints $out"
}
build_and_run c "$CC" -std=c11 -Wall -Wextra -Werror
build_and_run cc "$CXX" -Wall -Wextra -Werror

# The static library with what `pkg-config --static` adds (Libs.private,
# Requires.private); --as-needed drops the shared one that -lsnapbox names.
# shellcheck disable=SC2046
if ! (cd "$W" && "$CC" -std=c11 -Wall -Wextra -Werror $(pkg-config --cflags snapbox) -o prog-static \
          prog.c "$lib/libsnapbox.a" -Wl,--as-needed $(pkg-config --static --libs snapbox)) \
        > "$W/static.log" 2>&1; then
    cat "$W/static.log" >&2
    fail "prog.c does not link with libsnapbox.a and pkg-config --static --libs snapbox"
elif readelf -d "$W/prog-static" | grep -q "libsnapbox"; then
    fail "prog-static still needs libsnapbox.so"
elif [ "$(cd / && "$W/prog-static")" != "$expect" ]; then
    fail "prog-static does not print '$expect'"
else
    ok "$CC: prog.c linked with libsnapbox.a and pkg-config --static --libs"
fi

# ---- man pages ---------------------------------------------------------------------
for page in man1/snapbox.1 man3/libsnapbox.3; do
    if ! MANPAGER=cat PAGER=cat MANWIDTH=80 man --warnings -l "$T/usr/share/man/$page" \
            > "$W/man.out" 2> "$W/man.err"; then
        cat "$W/man.err" >&2
        fail "man -l $page failed"
    elif [ -s "$W/man.err" ]; then
        cat "$W/man.err" >&2
        fail "man -l $page warns"
    elif [ "$(wc -l < "$W/man.out")" -lt 20 ]; then
        fail "man -l $page renders almost nothing"
    else
        ok "man -l $page renders $(wc -l < "$W/man.out") lines without warnings"
    fi
done

# ---- the guest SDK: guests built outside the tree, then snapshotted and called ----
# A freestanding guest and one on the C library (musl), each from its own
# directory with `cc $(pkg-config --cflags --libs ...) app.c`, as a guest author would.
mkdir -p "$W/free" "$W/libc"
cp "$top/guest/demo/demo.c" "$W/free/app.c"
cp "$top/examples/wordfreq/wordfreq.c" "$W/libc/app.c"
for flavour in free libc; do
    pc=snapbox-guest; [ "$flavour" = libc ] && pc=snapbox-guest-libc
    # The prefix moved into $T, not a sysroot: the musl and compiler include
    # directories the libc flavour names are the system's own.
    # shellcheck disable=SC2046
    if (cd "$W/$flavour" && "$CC" $(PKG_CONFIG_SYSROOT_DIR='' pkg-config \
            --define-variable=prefix="$T/usr" --cflags --libs "$pc") app.c -o app.elf) \
            > "$W/$flavour.log" 2>&1; then
        ok "$pc: a guest built outside the tree with pkg-config alone"
    else
        cat "$W/$flavour.log" >&2
        fail "$pc: the guest in $W/$flavour does not build with pkg-config --cflags --libs $pc"
    fi
    "$T/usr/bin/snapbox" inspect "$W/$flavour/app.elf" | grep -q "^verdict: *accepted" ||
        fail "the installed snapbox does not accept $W/$flavour/app.elf"
done
# An image too large for the layout is refused when it is linked.
printf '#include "sbx_guest.h"\nstatic char big[800 << 20];\nvoid sbx_guest_init(void) { sbx_log(SBX_LOG_INFO, big); }\n' \
    > "$W/free/big.c"
# shellcheck disable=SC2046
if (cd "$W/free" && "$CC" $(PKG_CONFIG_SYSROOT_DIR='' pkg-config --define-variable=prefix="$T/usr" \
        --cflags --libs snapbox-guest) big.c -o big.elf) > "$W/big.log" 2>&1; then
    fail "a guest with an 800 MiB image linked"
elif grep -q "snapbox guest image too large" "$W/big.log"; then
    ok "a guest image too large is refused at link time, by name"
else
    cat "$W/big.log" >&2; fail "a too large guest failed to link without saying why"
fi
# Real KVM: natively where /dev/kvm runs guests, else in the KVM test VM.
cat > "$W/sdk-kvm.sh" <<'EOS'
#!/bin/sh
set -e
./snapbox create free.elf -o free.snap >/dev/null
./snapbox create libc.elf -o libc.snap >/dev/null
[ "$(./snapbox call free.snap add 2 3)" = 5 ]
[ "$(printf 'b a b' | ./snapbox call libc.snap top @- 1)" = "b 2" ]
echo SDK-GUESTS-OK
EOS
chmod +x "$W/sdk-kvm.sh"
mkdir -p "$W/kvm" && cp "$T/usr/bin/snapbox" "$W/kvm/" && cp "$W/sdk-kvm.sh" "$W/kvm/"
cp "$W/free/app.elf" "$W/kvm/free.elf" && cp "$W/libc/app.elf" "$W/kvm/libc.elf"
if [ "$(sh "$top/scripts/kvm-where.sh" "$BUILD" 2>/dev/null)" = native ]; then
    out=$(cd "$W/kvm" && LD_LIBRARY_PATH=$lib ./sdk-kvm.sh 2>&1) || true
else
    out=$(cd "$W/kvm" && KVMVM_FILES="snapbox free.elf libc.elf" \
          bash "$top/tests/kvm-vm.sh" ./sdk-kvm.sh 2>&1) || true
fi
case $out in
    *SDK-GUESTS-OK*) ok "SDK guests snapshotted and called in real KVM" ;;
    *) echo "$out" | tail -20 >&2; fail "the SDK guests did not snapshot and answer in KVM" ;;
esac

# ---- make uninstall -----------------------------------------------------------------
"$MAKE" --no-print-directory uninstall DESTDIR="$T" PREFIX=/usr BUILD="$BUILD" > "$W/uninstall.log" 2>&1 ||
    { cat "$W/uninstall.log" >&2; die "make uninstall DESTDIR=$T PREFIX=/usr failed"; }
left=$(find "$T" ! -type d)
if [ -n "$left" ]; then
    echo "$left" >&2
    fail "make uninstall left files behind"
else
    ok "make uninstall removed every file"
fi

[ "$errors" = 0 ] || die "$errors check(s) failed"
echo "test_install: all checks passed"
