#!/bin/bash
# kvm-vm.sh - run a Linux x86-64 program with a real /dev/kvm on a machine that has none.
#
# QEMU's software CPU (TCG) emulates an AMD CPU with SVM and nested paging, so
# a Linux guest booted under it can load kvm_amd. This script boots Debian's
# kernel with a busybox initramfs holding the program, its shared libraries
# and KVMVM_FILES, runs it in /job, streams its output and returns its exit
# status.
#
# usage: tests/kvm-vm.sh PROGRAM [ARGS...]
# env:   KVMVM_FILES="a b dir"  more files/dirs copied into /job
#        KVMVM_ENV="NAME=value ..." variables set for the program in the VM
#        KVMVM_MEM (MiB, 2048), KVMVM_TIMEOUT (s, 900), KVMVM_CPU (max)
#        KVMVM_CACHE (/var/tmp/snapbox-kvmvm): the kernel, fetched once with apt
#        KVMVM_VERBOSE=1: print the VM console at the end
# exit:  the program's status; 120 no /dev/kvm in the VM, 124 timeout,
#        125 the VM died without a status, 126 set-up failed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "kvm-vm: $*" >&2; exit 126; }
[ $# -ge 1 ] || { sed -n '2,17p' "$0" >&2; exit 126; }
prog=$1; shift
[ -f "$prog" ] && [ -x "$prog" ] || fail "not an executable file: $prog"

cache=${KVMVM_CACHE:-/var/tmp/snapbox-kvmvm}
mem=${KVMVM_MEM:-2048}
tmo=${KVMVM_TIMEOUT:-900}
cpu=${KVMVM_CPU:-max}

sh "$here/../scripts/deps.sh" vm || fail "missing packages for the KVM VM"

# Debian's kernel and the four modules kvm_amd needs, unpacked once.
prepare_kernel() {
    mkdir -p "$cache" && cd "$cache"
    local pkg
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    if [ -z "$pkg" ]; then
        apt-get update -qq >&2
        pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    fi
    [ -n "$pkg" ] || return 1
    echo "kvm-vm: fetching $pkg (once, into $cache)" >&2
    rm -rf dl x && mkdir dl x
    (cd dl && apt-get download "$pkg" >&2) || return 1
    dpkg-deb -x dl/*.deb x
    local kver=${pkg#linux-image-} m f
    cp "x/boot/vmlinuz-$kver" vmlinuz
    rm -rf modules && mkdir modules
    for m in virt/lib/irqbypass arch/x86/kvm/kvm drivers/crypto/ccp/ccp arch/x86/kvm/kvm-amd; do
        f=$(ls "x/lib/modules/$kver/kernel/$m".ko* 2>/dev/null | head -1)
        [ -n "$f" ] || return 1
        case "$f" in
            *.xz) xz -dc "$f" ;;
            *.zst) zstd -dcq "$f" ;;
            *) cat "$f" ;;
        esac > "modules/$(basename "$m").ko"
    done
    rm -rf dl x
    touch ready
}
[ -f "$cache/ready" ] || (prepare_kernel) || fail "could not prepare the VM kernel in $cache"

work=$(mktemp -d /tmp/snapbox-kvmvm.XXXXXX)
qpid=
cleanup() { [ -n "$qpid" ] && kill "$qpid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
root=$work/root
mkdir -p "$root"/{bin,lib/modules,proc,sys,dev,tmp,job}
cp /bin/busybox "$root/bin/busybox"
cp "$cache"/modules/*.ko "$root/lib/modules/"
add_libs() {
    ldd "$1" >/dev/null 2>&1 || return 0
    for lib in $(ldd "$1" | grep -o '/[^ ]*'); do cp -L --parents "$lib" "$root/" 2>/dev/null || true; done
}
cp "$prog" "$root/job/" && add_libs "$prog"
for f in ${KVMVM_FILES:-}; do
    cp -a "$f" "$root/job/" || fail "cannot copy $f"
    [ -f "$f" ] && add_libs "$f"
done

quote() { printf "'%s' " "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
args=""
for a in "$@"; do args+=$(quote "$a"); done
envs=""
for e in ${KVMVM_ENV:-}; do
    case "$e" in
        [A-Za-z_]*=*) envs+="export $(quote "$e")"$'\n' ;;
        *) fail "KVMVM_ENV: '$e' is not NAME=value" ;;
    esac
done
cat > "$root/init" <<EOI
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin HOME=/job TMPDIR=/tmp
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp
ip link set lo up 2>/dev/null || echo "KVMVM: no loopback interface"
for m in irqbypass kvm ccp kvm-amd; do insmod /lib/modules/\$m.ko || echo "KVMVM: insmod \$m failed"; done
if [ ! -c /dev/kvm ]; then echo "KVMVM: no /dev/kvm"; dmesg | tail -20; echo "KVMVM_RC=120"; poweroff -f; fi
stty -F /dev/ttyS1 raw -echo 2>/dev/null
${envs}cd /job
./$(quote "$(basename "$prog")") $args >/dev/ttyS1 2>&1 </dev/null
echo "KVMVM_RC=\$?"
poweroff -f
EOI
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 > "$work/initrd.gz")

: > "$work/out.log"; : > "$work/console.log"
timeout -k 5 "$tmo" qemu-system-x86_64 -accel tcg -cpu "$cpu" -m "$mem" -smp 1 \
    -nodefaults -no-user-config -display none -monitor none -no-reboot \
    -kernel "$cache/vmlinuz" -initrd "$work/initrd.gz" \
    -append "console=ttyS0 panic=-1 quiet loglevel=4" \
    -serial file:"$work/console.log" -serial file:"$work/out.log" </dev/null >"$work/qemu.log" 2>&1 &
qpid=$!
tail -n +1 -s 0.2 -f --pid="$qpid" "$work/out.log" || true
set +e; wait "$qpid"; qrc=$?; set -e; qpid=
rc=$(tr -d '\r' < "$work/console.log" | sed -n 's/^KVMVM_RC=\([0-9]*\).*/\1/p' | tail -1)
if [ "${KVMVM_VERBOSE:-0}" = 1 ] || [ -z "$rc" ] || [ "$rc" = 120 ]; then
    echo "----- VM console -----" >&2; tr -d '\r' < "$work/console.log" >&2; cat "$work/qemu.log" >&2
fi
if [ -z "$rc" ]; then
    if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then echo "kvm-vm: timed out after ${tmo}s" >&2; exit 124; fi
    echo "kvm-vm: the VM exited (qemu status $qrc) without the program's status" >&2; exit 125
fi
exit "$rc"
