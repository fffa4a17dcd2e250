#!/bin/sh
# run-kvm.sh TEST_BINARY BUILD_DIR - run a KVM test binary against real KVM:
# natively where /dev/kvm runs snapbox guests (scripts/kvm-where.sh), otherwise inside the QEMU VM of
# tests/kvm-vm.sh. A machine with neither fails: a skipped KVM test is not a pass.
# KVMVM_EXTRA: more programs carried into the VM (test_serve.sh: curl).
set -eu
test=$1
build=${2:-build}
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(sh "$here/../scripts/kvm-where.sh" "$build")" = native ]; then
    echo "run-kvm: /dev/kvm runs snapbox guests; running $test natively"
    exec "$test" "$build/guests" "$build/snapbox" "$(realpath "$build/tests/crashshim.so")"
fi
echo "run-kvm: no usable /dev/kvm; running $test inside the KVM test VM (tests/kvm-vm.sh)"
# The suites' knobs (SBX_ISOLATION_ROUNDS, ...) travel into the VM.
KVMVM_ENV="$(env | grep -E '^SBX_[A-Z_]+=[^ ]*$' | tr '\n' ' ')" KVMVM_FILES="$build/guests $build/snapbox $build/tests/crashshim.so ${KVMVM_EXTRA:-}" \
    exec "$here/kvm-vm.sh" "$test" guests ./snapbox ./crashshim.so
