/* state.c - save and load the vCPU state for snapshots. */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vcpu.h"

/* KVM finishes an I/O instruction only when KVM_RUN is entered again; an
 * immediate exit does that without running the guest. */
int sbx_vcpu_finish_io(struct sbx_vm *vm, struct sbx_diag *diag)
{
    vm->run->immediate_exit = 1;
    int rc = ioctl(vm->vcpu_fd, KVM_RUN, 0);
    int err = errno;
    vm->run->immediate_exit = 0;
    if (rc < 0 && err != EINTR) {
        errno = err;
        return sbx_vm_ioctl_fail(diag, "KVM_RUN (immediate exit)");
    }
    return 0;
}

int sbx_vcpu_save(struct sbx_vm *vm, struct sbx_vcpu_state *st, struct sbx_diag *diag)
{
    int rc = sbx_vcpu_finish_io(vm, diag);
    if (rc)
        return rc;
    struct kvm_xsave xs;
    memset(st, 0, sizeof *st);
    if (ioctl(vm->vcpu_fd, KVM_GET_REGS, &st->regs) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_GET_REGS");
    if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &st->sregs) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_GET_SREGS");
    if (ioctl(vm->vcpu_fd, KVM_GET_XSAVE, &xs) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_GET_XSAVE");
    memcpy(st->xsave, xs.region, sizeof xs.region);
    st->xsave_size = sizeof xs.region;
    if (ioctl(vm->vcpu_fd, KVM_GET_XCRS, &st->xcrs) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_GET_XCRS");
    return 0;
}

int sbx_vcpu_load(struct sbx_vm *vm, const struct sbx_vcpu_state *st, struct sbx_diag *diag)
{
    struct kvm_xsave xs;
    memset(&xs, 0, sizeof xs);
    memcpy(xs.region, st->xsave, sizeof xs.region);
    if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &st->sregs) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_SET_SREGS");
    if (ioctl(vm->vcpu_fd, KVM_SET_XCRS, &st->xcrs) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_SET_XCRS");
    if (ioctl(vm->vcpu_fd, KVM_SET_XSAVE, &xs) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_SET_XSAVE");
    if (ioctl(vm->vcpu_fd, KVM_SET_REGS, &st->regs) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_SET_REGS");
    return 0;
}
