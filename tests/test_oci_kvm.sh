#!/bin/sh
# test_oci_kvm.sh [BUILD_DIR] - a snapshot pulled by reference restores and
# answers a call in real KVM: tests/oci-kvm-job.sh natively where /dev/kvm
# runs snapbox guests (scripts/kvm-where.sh), else inside the KVM test VM
# (tests/kvm-vm.sh) with snapbox, docker-registry and skopeo carried in.
set -eu
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
reg=$(command -v docker-registry) skopeo=$(command -v skopeo)
if [ "$(sh "$here/../scripts/kvm-where.sh" "$build")" = native ]; then
    exec sh "$here/oci-kvm-job.sh" "$build/guests" "$build/snapbox" "$reg" "$skopeo"
fi
echo "test_oci_kvm: running tests/oci-kvm-job.sh inside the KVM test VM (tests/kvm-vm.sh)"
KVMVM_FILES="$build/guests $build/snapbox $reg $skopeo" \
    exec "$here/kvm-vm.sh" "$here/oci-kvm-job.sh" guests ./snapbox ./docker-registry ./skopeo
