/* run.c - the vCPU run loop: exits, the deadline check and CPU exceptions. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "debug/debug.h"
#include "vcpu.h"

static const char *vector_name(uint32_t v)
{
    static const char *names[] = {
        "#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
        "#BR bound range", "#UD invalid opcode", "#NM device not available",
        "#DF double fault", "coprocessor overrun", "#TS invalid TSS", "#NP segment not present",
        "#SS stack fault", "#GP general protection", "#PF page fault", "reserved",
        "#MF x87 error", "#AC alignment check", "#MC machine check", "#XM SIMD error",
        "#VE virtualization", "#CP control protection",
    };
    return v < sizeof names / sizeof names[0] ? names[v] : "exception";
}

static bool vector_has_error_code(uint32_t v)
{
    return v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30;
}

/* The CPU's frame on the IST stack, where the stub for vector v ran:
 * [error code,] rip, cs, rflags, rsp, ss of the code that faulted. */
struct fault_frame {
    uint64_t error_code, rip, cs, rflags, rsp, ss;
};

static void read_frame(const struct sbx_vm *vm, uint32_t v, uint64_t rsp, struct fault_frame *f)
{
    uint64_t w[6] = { 0 };
    size_t n = vector_has_error_code(v) ? 6 : 5;
    const uint8_t *p = sbx_mem_at(vm, rsp, n * sizeof w[0]);
    if (p)
        memcpy(w + (6 - n), p, n * sizeof w[0]);
    *f = (struct fault_frame){ .error_code = w[0], .rip = w[1], .cs = w[2], .rflags = w[3],
                               .rsp = w[4], .ss = w[5] };
}

int sbx_fault_regs(const struct sbx_vm *vm, struct kvm_regs *regs)
{
    uint64_t stubs_end = SBX_LAYOUT_FAULT_STUBS + SBX_FAULT_VECTORS * SBX_FAULT_STUB_SIZE;
    if (regs->rip < SBX_LAYOUT_FAULT_STUBS || regs->rip >= stubs_end)
        return -1;
    uint32_t v = (uint32_t)((regs->rip - SBX_LAYOUT_FAULT_STUBS) / SBX_FAULT_STUB_SIZE);
    struct fault_frame f;
    read_frame(vm, v, regs->rsp, &f);
    regs->rip = f.rip;
    regs->rflags = f.rflags;
    regs->rsp = f.rsp;
    return (int)v;
}

static int report_fault(struct sbx_sandbox *s, uint32_t v, struct sbx_diag *diag)
{
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    if (ioctl(s->vm.vcpu_fd, KVM_GET_REGS, &regs) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_GET_REGS");
    if (ioctl(s->vm.vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_GET_SREGS");
    struct fault_frame frame;
    read_frame(&s->vm, v, regs.rsp, &frame);
    struct sbx_fault_info f = { .vector = v, .addr = v == 14 ? sregs.cr2 : 0,
                                .error_code = vector_has_error_code(v) ? frame.error_code : 0,
                                .rip = frame.rip };
    uint64_t guard = sbx_boot_info(&s->vm)->stack_guard; /* for the message only */
    bool overflow = v == 14 && f.addr >= guard && f.addr - guard < SBX_PAGE_SIZE;
    int rc = sbx_fail(diag, SBX_E_GUEST_FAULT,
                      "guest %s: vector %u (%s) at rip 0x%llx, address 0x%llx, error code 0x%llx",
                      overflow ? "stack overflow (a fault in the stack's guard page)"
                               : "CPU exception",
                      v, vector_name(v), (unsigned long long)f.rip, (unsigned long long)f.addr,
                      (unsigned long long)f.error_code);
    if (diag)
        diag->fault = f;
    return rc;
}

static int handle_io(struct sbx_sandbox *s, uint8_t until, struct sbx_diag *diag)
{
    struct kvm_run *run = s->vm.run;
    uint8_t value = 0;
    if (run->io.size >= 1 && run->io.data_offset <= s->vm.run_size - 1)
        value = *((uint8_t *)run + run->io.data_offset);
    if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == SBX_PORT_HYPERCALL)
        return sbx_hypercall(s, value, until, diag);
    if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == SBX_PORT_FAULT) {
        int rc = s->gdb ? sbx_gdb_guest_trap(s, value, diag) : SBX_GDB_NOT_OURS;
        return rc == SBX_GDB_NOT_OURS ? report_fault(s, value, diag) : rc;
    }
    return sbx_fail(diag, SBX_E_GUEST_ABI, "guest %s I/O port 0x%x, which is not a snapbox port",
                    run->io.direction == KVM_EXIT_IO_OUT ? "wrote to" : "read from", run->io.port);
}

static int handle_exit(struct sbx_sandbox *s, uint8_t until, struct sbx_diag *diag)
{
    struct kvm_run *run = s->vm.run;
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        return handle_io(s, until, diag);
    case KVM_EXIT_INTR:
        return 0;
    case KVM_EXIT_DEBUG:
        if (s->gdb)
            return sbx_gdb_debug_exit(s, diag);
        return sbx_fail(diag, SBX_E_KVM, "KVM: a debug exit without a debugger");
    case KVM_EXIT_HLT:
        return sbx_fail(diag, SBX_E_GUEST_ABI, "guest halted outside a hypercall");
    case KVM_EXIT_SHUTDOWN:
        return sbx_fail(diag, SBX_E_GUEST_FAULT,
                        "guest triple fault (an exception while handling an exception)");
    case KVM_EXIT_MMIO:
        return sbx_fail(diag, SBX_E_GUEST_FAULT,
                        "guest accessed guest-physical address 0x%llx, outside its memory",
                        (unsigned long long)run->mmio.phys_addr);
    case KVM_EXIT_FAIL_ENTRY:
        return sbx_fail(diag, SBX_E_KVM, "KVM: vCPU entry failed, hardware reason 0x%llx",
                        (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
    case KVM_EXIT_INTERNAL_ERROR:
        return sbx_fail(diag, SBX_E_KVM, "KVM: internal error, suberror %u", run->internal.suberror);
    default:
        return sbx_fail(diag, SBX_E_KVM, "KVM: unexpected exit reason %u", run->exit_reason);
    }
}

int sbx_run(struct sbx_sandbox *s, uint8_t until, struct sbx_diag *diag)
{
    s->log_count = 0;
    sigset_t saved;
    int rc = s->gdb ? sbx_gdb_run_begin(s, diag) : 0;
    if (rc)
        return rc;
    /* While gdb holds the guest, time is the debugger's: no deadline. */
    uint32_t ms = s->gdb ? UINT32_MAX / 2 : s->cfg.deadline_ms;
    rc = sbx_deadline_begin(&s->deadline, &s->vm, ms, s->cfg.deadline_signal, &saved, diag);
    if (rc)
        return rc;
    while (rc == 0) {
        if (!s->gdb && sbx_deadline_passed(&s->deadline)) {
            rc = sbx_fail(diag, SBX_E_TIMEOUT, "guest call ran past its deadline of %u ms",
                          s->cfg.deadline_ms);
            break;
        }
        if (ioctl(s->vm.vcpu_fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            rc = sbx_vm_ioctl_fail(diag, "KVM_RUN");
            break;
        }
        rc = handle_exit(s, until, diag);
    }
    sbx_deadline_finish(&s->deadline, s->cfg.deadline_signal, &saved);
    if (s->gdb)
        sbx_gdb_run_end(s, rc > 0 ? 0 : rc, diag);
    if (s->log_count > s->cfg.max_log_per_call)
        sbx_logf(s->cfg.log, s->cfg.log_ctx, SBX_LOG_WARN,
                 "guest logged %u messages in one call; %u over the limit of %u were dropped",
                 s->log_count, s->log_count - s->cfg.max_log_per_call, s->cfg.max_log_per_call);
    return rc > 0 ? 0 : rc;
}
