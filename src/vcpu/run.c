/* run.c - the vCPU run loop: exits, deadlines and CPU exceptions. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "vcpu.h"

/* After the deadline the timer keeps firing at this period, so a signal that
 * lands while the thread is outside KVM_RUN is followed by another. */
#define DEADLINE_REPEAT_NS 1000000L

struct deadline {
    timer_t timer;
    bool armed;
    struct timespec end;
};

static void deadline_noop(int sig) { (void)sig; }

void sbx_install_deadline_handler(int signo)
{
    struct sigaction old;
    if (sigaction(signo, NULL, &old) == 0 && old.sa_handler == SIG_DFL) {
        struct sigaction sa = { .sa_handler = deadline_noop };
        sigemptyset(&sa.sa_mask);
        sigaction(signo, &sa, NULL);
    }
}

static int deadline_arm(struct deadline *dl, uint32_t ms, int signo, struct sbx_diag *diag)
{
    clock_gettime(CLOCK_MONOTONIC, &dl->end);
    dl->end.tv_sec += ms / 1000;
    dl->end.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl->end.tv_nsec >= 1000000000L) {
        dl->end.tv_sec++;
        dl->end.tv_nsec -= 1000000000L;
    }
    struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = signo };
    sev._sigev_un._tid = gettid();
    if (timer_create(CLOCK_MONOTONIC, &sev, &dl->timer) < 0)
        return sbx_fail(diag, SBX_E_KVM, "timer_create for the call deadline failed: %s",
                        strerror(errno));
    dl->armed = true;
    struct itimerspec its = { .it_value = dl->end, .it_interval = { 0, DEADLINE_REPEAT_NS } };
    if (timer_settime(dl->timer, TIMER_ABSTIME, &its, NULL) < 0)
        return sbx_fail(diag, SBX_E_KVM, "timer_settime for the call deadline failed: %s",
                        strerror(errno));
    return 0;
}

static void deadline_disarm(struct deadline *dl)
{
    if (dl->armed)
        timer_delete(dl->timer);
    dl->armed = false;
}

static bool deadline_passed(const struct deadline *dl)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > dl->end.tv_sec ||
           (now.tv_sec == dl->end.tv_sec && now.tv_nsec >= dl->end.tv_nsec);
}

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

/* The stub for vector v ran on the IST stack: read the CPU's frame there. */
static int report_fault(struct sbx_sandbox *s, uint32_t v, struct sbx_diag *diag)
{
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    if (ioctl(s->vm.vcpu_fd, KVM_GET_REGS, &regs) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_GET_REGS");
    if (ioctl(s->vm.vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_GET_SREGS");
    struct sbx_fault_info f = { .vector = v, .addr = v == 14 ? sregs.cr2 : 0 };
    uint64_t frame[2] = { 0, 0 };
    const uint8_t *p = sbx_mem_at(&s->vm, regs.rsp, sizeof frame);
    if (p)
        memcpy(frame, p, sizeof frame);
    if (vector_has_error_code(v)) {
        f.error_code = frame[0];
        f.rip = frame[1];
    } else {
        f.rip = frame[0];
    }
    int rc = sbx_fail(diag, SBX_E_GUEST_FAULT,
                      "guest CPU exception: vector %u (%s) at rip 0x%llx, address 0x%llx, "
                      "error code 0x%llx",
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
    if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == SBX_PORT_FAULT)
        return report_fault(s, value, diag);
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
    struct deadline dl = { .armed = false };
    s->log_count = 0;
    int rc = deadline_arm(&dl, s->cfg.deadline_ms, s->cfg.deadline_signal, diag);
    while (rc == 0) {
        if (deadline_passed(&dl)) {
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
    deadline_disarm(&dl);
    if (s->log_count > s->cfg.max_log_per_call)
        sbx_logf(s->cfg.log, s->cfg.log_ctx, SBX_LOG_WARN,
                 "guest logged %u messages in one call; %u over the limit of %u were dropped",
                 s->log_count, s->log_count - s->cfg.max_log_per_call, s->cfg.max_log_per_call);
    return rc > 0 ? 0 : rc;
}
