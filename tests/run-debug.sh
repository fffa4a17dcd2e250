#!/bin/sh
# run-debug.sh BUILD_DIR - the debugging suite (tests/test_debug.sh: core
# dumps and the gdb stub, checked with Debian's gdb in batch mode) against
# real KVM: natively where /dev/kvm runs snapbox guests, otherwise inside the
# KVM test VM (tests/kvm-vm.sh), with gdb carried in. gdb is linked to
# libpython, which needs its standard library at start-up: a copy without
# tests, GUI and packaging modules goes in as PYTHONHOME, gdb's own Python
# files as its data directory.
set -eu
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
sh "$here/../scripts/deps.sh" debug
gdb=$(command -v gdb) || { echo "run-debug: no gdb (scripts/deps.sh debug installs it)" >&2; exit 1; }
if [ "$(sh "$here/../scripts/kvm-where.sh" "$build")" = native ]; then
    echo "run-debug: /dev/kvm runs snapbox guests; running tests/test_debug.sh natively"
    exec sh "$here/test_debug.sh" "$build/guests" "$build/snapbox" "$gdb"
fi
echo "run-debug: no usable /dev/kvm; running tests/test_debug.sh inside the KVM test VM"
py=$(gdb -batch -nx -ex 'python import sys; print(sys.prefix + "/lib/python%d.%d" % sys.version_info[:2])' 2>/dev/null | tail -1)
[ -d "$py" ] || { echo "run-debug: cannot find gdb's Python library ($py)" >&2; exit 1; }
stage="$build/debug-vm"
rm -rf "$stage" && mkdir -p "$stage/pyhome/lib" "$stage/gdbdata"
(cd "$(dirname "$py")" && tar cf - --exclude=__pycache__ --exclude='*/test' --exclude='*/idlelib' \
    --exclude='*/tkinter' --exclude='*/lib2to3' --exclude='*/ensurepip' --exclude='*/pydoc_data' \
    --exclude='*/config-*' --exclude='*/turtledemo' --exclude='*/distutils' --exclude='*/unittest' \
    --exclude='*/asyncio' --exclude='*/email' --exclude='*/xml' --exclude='*/multiprocessing' \
    --exclude='*/sqlite3' --exclude='*/lib-dynload' --exclude='*/site-packages' \
    --exclude='*/dist-packages' "$(basename "$py")") | tar xf - -C "$stage/pyhome/lib"
cp -a /usr/share/gdb/. "$stage/gdbdata/"
cp "$gdb" "$stage/gdb"
KVMVM_ENV="PYTHONHOME=/job/pyhome SBX_GDB_DATA=/job/gdbdata SBX_DEBUG_NO_HW_BREAK=untestable_under_TCG" \
KVMVM_FILES="$build/guests $build/snapbox $stage/gdb $stage/pyhome $stage/gdbdata" \
    exec "$here/kvm-vm.sh" "$here/test_debug.sh" guests ./snapbox ./gdb
