#!/bin/sh
# kvm-where.sh BUILD_DIR - print "native" when this machine's /dev/kvm runs
# snapbox guests, else "vm" (tests/kvm-vm.sh then gives a real KVM). The one
# home of that decision for tests, valgrind, bench and demo.
#
# A /dev/kvm node is not enough: some sandboxes offer PVM (kvm_pvm), a
# paravirtual KVM that runs only PVM-aware kernels; our ring-0 guests stop
# there with "KVM: internal error". So the answer is a real guest call that
# uses SSE state, not the node's presence.
# SNAPBOX_KVM=native|vm overrides the probe.
set -u
build=${1:-build}
case "${SNAPBOX_KVM:-}" in
    native|vm) echo "$SNAPBOX_KVM"; exit 0 ;;
    "") ;;
    *) echo "kvm-where: SNAPBOX_KVM must be native or vm, not '$SNAPBOX_KVM'" >&2; exit 2 ;;
esac
if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
    echo vm; exit 0
fi
if [ -d /sys/module/kvm_pvm ]; then
    echo "kvm-where: /dev/kvm is PVM (kvm_pvm), which runs only PVM-aware guests; using the KVM test VM" >&2
    echo vm; exit 0
fi
out=$(timeout 20 "$build/snapbox" run "$build/guests/demo.elf" upper probe 2>&1)
if [ "$out" = "PROBE" ]; then
    echo native
else
    echo "kvm-where: /dev/kvm failed a probe call ($out); using the KVM test VM" >&2
    echo vm
fi
