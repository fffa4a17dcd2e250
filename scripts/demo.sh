#!/bin/sh
# demo.sh BUILD_DIR - the main job on the demo guest: inspect it, then
# initialise it in KVM and call its functions (inside the KVM test VM when
# this machine has no /dev/kvm).
set -eu
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
echo "== snapbox inspect $build/guests/demo.elf"
"$build/snapbox" inspect "$build/guests/demo.elf"
echo
if [ "$(sh "$here/kvm-where.sh" "$build")" = native ]; then
    echo "== calling the demo guest in KVM (native /dev/kvm)"
    cd "$build" && exec sh "$here/demo-calls.sh"
fi
echo "== calling the demo guest in KVM (this machine has no /dev/kvm: inside the KVM test VM,"
echo "   QEMU software emulation, so timings are for correctness only)"
KVMVM_FILES="$build/snapbox $build/guests" exec "$here/../tests/kvm-vm.sh" "$here/demo-calls.sh"
