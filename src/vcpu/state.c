/* state.c - the complete vCPU state (struct sbx_vcpu_state): read it, put it
 * back, and drain what KVM still has in flight before either. */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vcpu.h"

/* A split MMIO access takes one completion per fragment; more than this
 * means KVM is not converging. */
#define DRAIN_MAX_EXITS 16
#define MSR_IA32_TSC 0x10u

/* Answer an access the guest left half-done with zeros, so that completing
 * it cannot carry data from the host. */
static void zero_pending_input(struct sbx_vm *vm)
{
    struct kvm_run *run = vm->run;
    if (run->exit_reason == KVM_EXIT_MMIO && !run->mmio.is_write) {
        memset(run->mmio.data, 0, sizeof run->mmio.data);
    } else if (run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_IN) {
        uint64_t len = (uint64_t)run->io.size * run->io.count;
        if (run->io.data_offset < vm->run_size && len <= vm->run_size - run->io.data_offset)
            memset((uint8_t *)run + run->io.data_offset, 0, len);
    }
}

/* KVM completes an I/O or MMIO instruction only on the next KVM_RUN; with
 * immediate_exit that run executes no guest code. A split MMIO access exits
 * again for its next fragment, so repeat until KVM reports nothing left. */
int sbx_vcpu_finish_io(struct sbx_vm *vm, struct sbx_diag *diag)
{
    int rc = 0;
    vm->run->immediate_exit = 1;
    for (int i = 0;; i++) {
        if (i == DRAIN_MAX_EXITS) {
            rc = sbx_fail(diag, SBX_E_KVM, "KVM: the vCPU still had I/O in flight after %d "
                          "completions", DRAIN_MAX_EXITS);
            break;
        }
        zero_pending_input(vm);
        if (ioctl(vm->vcpu_fd, KVM_RUN, 0) < 0) {
            if (errno != EINTR)
                rc = sbx_vm_ioctl_fail(diag, "KVM_RUN (immediate exit)");
            break; /* EINTR: nothing was left to complete */
        }
    }
    vm->run->immediate_exit = 0;
    return rc;
}

static int get_msrs(struct sbx_vm *vm, struct sbx_vcpu_state *st, struct sbx_diag *diag)
{
    const uint32_t *list;
    uint32_t n;
    int rc = sbx_msr_list(vm, &list, &n, diag);
    if (rc)
        return rc;
    union sbx_kvm_msrs m;
    memset(&m, 0, sizeof m);
    m.h.nmsrs = n;
    for (uint32_t i = 0; i < n; i++)
        m.h.entries[i].index = list[i];
    int got = ioctl(vm->vcpu_fd, KVM_GET_MSRS, &m);
    if (got != (int)n)
        return got < 0 ? sbx_vm_ioctl_fail(diag, "KVM_GET_MSRS")
                       : sbx_fail(diag, SBX_E_KVM, "KVM_GET_MSRS: MSR 0x%x unreadable",
                                  list[got]);
    st->nmsrs = n;
    memcpy(st->msrs, m.h.entries, n * sizeof *st->msrs);
    return 0;
}

static uint64_t host_tsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

/* The guest's TSC goes back to value exactly. A host write of IA32_TSC
 * within a second of the last one is taken by KVM as a synchronisation and
 * keeps the old offset, so the offset is set directly where KVM allows it
 * (KVM_VCPU_TSC_OFFSET; the guest runs at the host's TSC rate). */
static int set_tsc(struct sbx_vm *vm, uint64_t value, struct sbx_diag *diag)
{
    uint64_t offset = 0;
    struct kvm_device_attr attr = { .group = KVM_VCPU_TSC_CTRL, .attr = KVM_VCPU_TSC_OFFSET,
                                    .addr = (uint64_t)(uintptr_t)&offset };
    if (ioctl(vm->vcpu_fd, KVM_HAS_DEVICE_ATTR, &attr) == 0) {
        offset = value - host_tsc();
        if (ioctl(vm->vcpu_fd, KVM_SET_DEVICE_ATTR, &attr) < 0)
            return sbx_vm_ioctl_fail(diag, "KVM_SET_DEVICE_ATTR(TSC offset)");
        return 0;
    }
    union sbx_kvm_msrs m;
    memset(&m, 0, sizeof m);
    m.h.nmsrs = 1;
    m.h.entries[0] = (struct kvm_msr_entry){ .index = MSR_IA32_TSC, .data = value };
    if (ioctl(vm->vcpu_fd, KVM_SET_MSRS, &m) != 1)
        return sbx_vm_ioctl_fail(diag, "KVM_SET_MSRS(IA32_TSC)");
    return 0;
}

static int set_msrs(struct sbx_vm *vm, const struct sbx_vcpu_state *st, struct sbx_diag *diag)
{
    union sbx_kvm_msrs m;
    memset(&m, 0, sizeof m);
    const struct kvm_msr_entry *tsc = NULL;
    for (uint32_t i = 0; i < st->nmsrs; i++) {
        if (st->msrs[i].index == MSR_IA32_TSC)
            tsc = &st->msrs[i];
        else
            m.h.entries[m.h.nmsrs++] = st->msrs[i];
    }
    int put = ioctl(vm->vcpu_fd, KVM_SET_MSRS, &m);
    if (put != (int)m.h.nmsrs)
        return put < 0 ? sbx_vm_ioctl_fail(diag, "KVM_SET_MSRS")
                       : sbx_fail(diag, SBX_E_KVM, "KVM_SET_MSRS: this host refused MSR 0x%x = "
                                  "0x%llx", m.h.entries[put].index,
                                  (unsigned long long)m.h.entries[put].data);
    return tsc ? set_tsc(vm, tsc->data, diag) : 0;
}

static int get_cpuid(struct sbx_vm *vm, struct sbx_vcpu_state *st, struct sbx_diag *diag)
{
    union sbx_kvm_cpuid c;
    memset(&c, 0, sizeof c);
    c.h.nent = SBX_MAX_CPUID;
    if (ioctl(vm->vcpu_fd, KVM_GET_CPUID2, &c) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_GET_CPUID2");
    st->ncpuid = c.h.nent;
    memcpy(st->cpuid, c.h.entries, c.h.nent * sizeof *st->cpuid);
    return 0;
}

static int get_xsave(struct sbx_vm *vm, struct sbx_vcpu_state *st, struct sbx_diag *diag)
{
    uint32_t size = vm->xsave_size;
    if (size > 4096) {
        if (ioctl(vm->vcpu_fd, KVM_GET_XSAVE2, st->xsave) < 0)
            return sbx_vm_ioctl_fail(diag, "KVM_GET_XSAVE2");
    } else if (ioctl(vm->vcpu_fd, KVM_GET_XSAVE, st->xsave) < 0) {
        return sbx_vm_ioctl_fail(diag, "KVM_GET_XSAVE");
    }
    st->xsave_size = size;
    return 0;
}

int sbx_vcpu_save(struct sbx_vm *vm, struct sbx_vcpu_state *st, struct sbx_diag *diag)
{
    int rc = sbx_vcpu_finish_io(vm, diag);
    if (rc)
        return rc;
    memset(st, 0, sizeof *st);
    if (ioctl(vm->vcpu_fd, KVM_GET_REGS, &st->regs) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_GET_REGS");
    if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &st->sregs) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_GET_SREGS");
    if (ioctl(vm->vcpu_fd, KVM_GET_DEBUGREGS, &st->debugregs) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_GET_DEBUGREGS");
    if (ioctl(vm->vcpu_fd, KVM_GET_VCPU_EVENTS, &st->events) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_GET_VCPU_EVENTS");
    if (ioctl(vm->vcpu_fd, KVM_GET_XCRS, &st->xcrs) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_GET_XCRS");
    if ((rc = get_msrs(vm, st, diag)) || (rc = get_cpuid(vm, st, diag)))
        return rc;
    return get_xsave(vm, st, diag);
}

static int set_xsave(struct sbx_vm *vm, const struct sbx_vcpu_state *st, struct sbx_diag *diag)
{
    /* KVM_SET_XSAVE reads as many bytes as KVM_GET_XSAVE2 reports. */
    static _Thread_local uint32_t buf[SBX_XSAVE_MAX / 4];
    uint32_t size = vm->xsave_size;
    if (st->xsave_size > size)
        return sbx_fail(diag, SBX_E_CPU, "the saved XSAVE area is %u bytes; this host's KVM "
                        "takes %u", st->xsave_size, size);
    memset(buf, 0, size);
    memcpy(buf, st->xsave, st->xsave_size);
    if (ioctl(vm->vcpu_fd, KVM_SET_XSAVE, buf) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_SET_XSAVE");
    return 0;
}

/* Everything a guest could have left is overwritten: control registers first
 * (XCR0 and XSAVE depend on CR4.OSXSAVE), pending events last. */
int sbx_vcpu_load(struct sbx_vm *vm, const struct sbx_vcpu_state *st, struct sbx_diag *diag)
{
    struct kvm_vcpu_events ev = st->events;
    struct kvm_debugregs dr = st->debugregs;
    int rc;
    ev.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW;
    dr.flags = 0;
    if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &st->sregs) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_SET_SREGS");
    if (ioctl(vm->vcpu_fd, KVM_SET_XCRS, &st->xcrs) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_SET_XCRS");
    if ((rc = set_xsave(vm, st, diag)) || (rc = set_msrs(vm, st, diag)))
        return rc;
    if (ioctl(vm->vcpu_fd, KVM_SET_REGS, &st->regs) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_SET_REGS");
    if (ioctl(vm->vcpu_fd, KVM_SET_DEBUGREGS, &dr) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_SET_DEBUGREGS");
    if (ioctl(vm->vcpu_fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_SET_VCPU_EVENTS");
    return 0;
}
