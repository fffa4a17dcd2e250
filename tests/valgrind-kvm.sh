#!/bin/sh
# valgrind-kvm.sh BUILD_DIR - the KVM paths of tests/valgrind-cli.sh: natively
# where /dev/kvm is usable, otherwise inside the KVM test VM with valgrind's
# binary and memcheck tool copied in.
set -eu
build=$1
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(sh "$here/../scripts/kvm-where.sh" "$build")" = native ]; then
    exec sh "$here/valgrind-cli.sh" "$build/snapbox" "$build/guests" "$build/valgrind-tmp" kvm
fi
lib=$build/valgrind-lib
rm -rf "$lib" && mkdir -p "$lib"
for f in memcheck-amd64-linux vgpreload_core-amd64-linux.so vgpreload_memcheck-amd64-linux.so \
         default.supp; do
    cp /usr/libexec/valgrind/$f "$lib/"
done
# memcheck must see ld.so's symbols: take the detached debug files of the
# dynamic linker and libc (libc6-dbg) along, by build ID.
for so in /lib64/ld-linux-x86-64.so.2 /lib/x86_64-linux-gnu/libc.so.6; do
    id=$(readelf -n "$so" | sed -n 's/.*Build ID: \([0-9a-f]*\).*/\1/p')
    dbg=/usr/lib/debug/.build-id/$(echo "$id" | cut -c1-2)/$(echo "$id" | cut -c3-).debug
    [ -f "$dbg" ] || { echo "valgrind-kvm: no debug symbols $dbg (libc6-dbg)" >&2; exit 1; }
    mkdir -p "$lib/debug/$(dirname "${dbg#/usr/lib/debug/}")"
    cp "$dbg" "$lib/debug/${dbg#/usr/lib/debug/}"
done
vgbin=/usr/bin/valgrind.bin
[ -x "$vgbin" ] || vgbin=$(command -v valgrind)
cp "$vgbin" "$build/valgrind-bin"
echo "valgrind-kvm: no usable /dev/kvm; running the KVM paths inside the KVM test VM"
KVMVM_FILES="$build/guests $build/snapbox $build/valgrind-bin $lib" \
    exec "$here/kvm-vm.sh" "$here/valgrind-cli.sh" ./snapbox guests /tmp/vg kvm ./valgrind-bin ./valgrind-lib
