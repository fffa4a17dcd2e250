/* seccomp.c - confine a thread that runs guests to the system calls that
 * restoring, calling and resetting sandboxes need (docs/security.md lists
 * them and why). A guest that escaped into the host thread would then be
 * unable to open sockets, execute programs or trace processes. */
#include <errno.h>
#include <seccomp.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vcpu.h"

static const int allowed[] = {
    /* KVM, guest memory and the host allocator */
    SCMP_SYS(ioctl), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise),
    SCMP_SYS(mprotect), SCMP_SYS(brk), SCMP_SYS(futex),
    /* a ready pool's resident memory (sbx_ready_pool_stats); the guest's
     * random bytes (SBX_HC_RANDOM) */
    SCMP_SYS(mincore), SCMP_SYS(getrandom),
    /* a fresh VM when the pool is empty opens /dev/kvm; snapshot files */
    SCMP_SYS(openat), SCMP_SYS(close), SCMP_SYS(read), SCMP_SYS(pread64), SCMP_SYS(lseek),
    SCMP_SYS(fstat), SCMP_SYS(newfstatat),
    /* logs and results */
    SCMP_SYS(write), SCMP_SYS(writev),
    /* the call deadline */
    SCMP_SYS(timer_create), SCMP_SYS(timer_settime), SCMP_SYS(timer_gettime),
    SCMP_SYS(timer_delete), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigtimedwait),
    SCMP_SYS(rt_sigreturn), SCMP_SYS(clock_gettime), SCMP_SYS(gettid), SCMP_SYS(getpid),
    SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep), SCMP_SYS(sched_yield),
    SCMP_SYS(restart_syscall), SCMP_SYS(sigaltstack),
    SCMP_SYS(exit), SCMP_SYS(exit_group),
};

/* ioctl only on KVM's request numbers, and the terminal query stdio makes. */
static int allow_ioctls(scmp_filter_ctx ctx)
{
    int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                              SCMP_A1(SCMP_CMP_MASKED_EQ, 0xff00u, (uint64_t)KVMIO << 8));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                              SCMP_A1(SCMP_CMP_EQ, (uint64_t)TCGETS, 0));
    return rc;
}

int sbx_seccomp_confine(unsigned flags, struct sbx_diag *diag)
{
    if (flags & ~(unsigned)SBX_SECCOMP_ERRNO)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_seccomp_confine: unknown flags 0x%x", flags);
    uint32_t deny = (flags & SBX_SECCOMP_ERRNO) ? SCMP_ACT_ERRNO(EPERM) : SCMP_ACT_KILL_PROCESS;
    scmp_filter_ctx ctx = seccomp_init(deny);
    if (!ctx)
        return sbx_fail(diag, SBX_E_NOMEM, "seccomp: cannot create a filter: this kernel, or a "
                        "tool the program runs under (valgrind), offers no seccomp");
    int rc = 0;
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0] && rc == 0; i++)
        if (allowed[i] != SCMP_SYS(ioctl))
            rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
    if (rc == 0)
        rc = allow_ioctls(ctx);
    if (rc == 0)
        rc = seccomp_load(ctx); /* this thread only: no SCMP_FLTATR_CTL_TSYNC */
    seccomp_release(ctx);
    if (rc < 0)
        return sbx_fail(diag, SBX_E_KVM, "seccomp: cannot install the filter: %s", strerror(-rc));
    return 0;
}
