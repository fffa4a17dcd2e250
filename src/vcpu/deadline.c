/* deadline.c - the per-call deadline: a POSIX timer signals the calling
 * thread so that KVM_RUN returns EINTR when a guest runs too long.
 *
 * The signal is blocked in the thread for the whole call and unblocked only
 * inside KVM_RUN (KVM_SET_SIGNAL_MASK). So it never runs a handler: whatever
 * the application's mask or disposition (ignored, default, its own handler),
 * host functions see no EINTR, and a signal that fires outside KVM_RUN stays
 * pending and stops the next KVM_RUN at once. At the end of the call a
 * signal the timer sent is taken out of the pending set. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "vcpu.h"

/* The kernel's sigset is 64 bits; KVM_SET_SIGNAL_MASK takes that size. */
#define KERNEL_SIGSET_SIZE 8

/* This thread, told apart from a later thread that reuses its id and from
 * the parent whose thread-local copy a fork()ed child inherits. */
static struct sbx_thread_tag this_thread(void)
{
    static _Thread_local struct sbx_thread_tag tag;
    pid_t tid = gettid();
    if (tag.tid != tid) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        tag = (struct sbx_thread_tag){ .tid = tid,
                                       .born_ns = (uint64_t)now.tv_sec * 1000000000u +
                                                  (uint64_t)now.tv_nsec };
    }
    return tag;
}

/* The timer signals one thread; a sandbox called from another gets a new one.
 * Calls from the same thread pay only the arming and disarming. */
static int timer_for_this_thread(struct sbx_deadline *dl, int signo, struct sbx_diag *diag)
{
    struct sbx_thread_tag me = this_thread();
    if (dl->has_timer && dl->owner.tid == me.tid && dl->owner.born_ns == me.born_ns)
        return 0;
    sbx_deadline_free(dl);
    struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = signo };
    sev._sigev_un._tid = me.tid;
    if (timer_create(CLOCK_MONOTONIC, &sev, &dl->timer) < 0)
        return sbx_fail(diag, SBX_E_KVM, "timer_create for the call deadline failed: %s",
                        strerror(errno));
    dl->has_timer = true;
    dl->owner = me;
    dl->pid = getpid();
    return 0;
}

/* KVM_RUN runs with the thread's own mask minus the deadline signal. */
static int set_run_mask(struct sbx_deadline *dl, const struct sbx_vm *vm, const sigset_t *thread,
                        int signo, struct sbx_diag *diag)
{
    sigset_t run = *thread;
    sigdelset(&run, signo);
    uint64_t bits;
    memcpy(&bits, &run, sizeof bits);
    if (dl->run_mask_set && dl->run_mask == bits)
        return 0;
    union {
        struct kvm_signal_mask h;
        uint8_t room[sizeof(struct kvm_signal_mask) + KERNEL_SIGSET_SIZE];
    } m;
    m.h.len = KERNEL_SIGSET_SIZE;
    memcpy(m.h.sigset, &bits, sizeof bits);
    if (ioctl(vm->vcpu_fd, KVM_SET_SIGNAL_MASK, &m) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_SET_SIGNAL_MASK");
    dl->run_mask = bits;
    dl->run_mask_set = true;
    return 0;
}

static void deadline_end(struct sbx_deadline *dl, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, &dl->end);
    dl->end.tv_sec += ms / 1000;
    dl->end.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl->end.tv_nsec >= 1000000000L) {
        dl->end.tv_sec++;
        dl->end.tv_nsec -= 1000000000L;
    }
}

int sbx_deadline_begin(struct sbx_deadline *dl, const struct sbx_vm *vm, uint32_t ms, int signo,
                       sigset_t *saved, struct sbx_diag *diag)
{
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, signo);
    pthread_sigmask(SIG_BLOCK, &block, saved);
    int rc = set_run_mask(dl, vm, saved, signo, diag);
    if (rc || (rc = timer_for_this_thread(dl, signo, diag)))
        goto err;
    deadline_end(dl, (int)ms);
    struct itimerspec its = { .it_value = dl->end };
    if (timer_settime(dl->timer, TIMER_ABSTIME, &its, NULL) < 0) {
        rc = sbx_fail(diag, SBX_E_KVM, "timer_settime for the call deadline failed: %s",
                      strerror(errno));
        goto err;
    }
    return 0;
err:
    pthread_sigmask(SIG_SETMASK, saved, NULL);
    return rc;
}

void sbx_deadline_finish(struct sbx_deadline *dl, int signo, const sigset_t *saved)
{
    static const struct itimerspec stop;
    struct itimerspec left;
    if (timer_settime(dl->timer, 0, &stop, &left) == 0 && left.it_value.tv_sec == 0 &&
        left.it_value.tv_nsec == 0) {
        /* It fired: take its signal back before the thread's mask returns. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, signo);
        static const struct timespec now;
        while (sigtimedwait(&set, NULL, &now) == signo)
            ;
    }
    pthread_sigmask(SIG_SETMASK, saved, NULL);
}

bool sbx_deadline_passed(const struct sbx_deadline *dl)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > dl->end.tv_sec ||
           (now.tv_sec == dl->end.tv_sec && now.tv_nsec >= dl->end.tv_nsec);
}

void sbx_deadline_free(struct sbx_deadline *dl)
{
    /* A fork()ed child inherits the struct but not the timer. */
    if (dl->has_timer && dl->pid == getpid())
        timer_delete(dl->timer);
    dl->has_timer = false;
}
