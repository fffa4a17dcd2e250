/* deadline.c - the per-call deadline: a POSIX timer that signals the calling
 * thread, so that KVM_RUN returns EINTR when a guest runs too long. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vcpu.h"

/* After the deadline the timer keeps firing at this period, so a signal that
 * lands while the thread is outside KVM_RUN is followed by another. */
#define DEADLINE_REPEAT_NS 1000000L

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

/* This thread, told apart from a later thread that reuses its id. */
static struct sbx_thread_tag this_thread(void)
{
    static _Thread_local struct sbx_thread_tag tag;
    if (!tag.tid) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        tag = (struct sbx_thread_tag){ .tid = gettid(),
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
    return 0;
}

int sbx_deadline_arm(struct sbx_deadline *dl, uint32_t ms, int signo, struct sbx_diag *diag)
{
    int rc = timer_for_this_thread(dl, signo, diag);
    if (rc)
        return rc;
    clock_gettime(CLOCK_MONOTONIC, &dl->end);
    dl->end.tv_sec += ms / 1000;
    dl->end.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl->end.tv_nsec >= 1000000000L) {
        dl->end.tv_sec++;
        dl->end.tv_nsec -= 1000000000L;
    }
    struct itimerspec its = { .it_value = dl->end, .it_interval = { 0, DEADLINE_REPEAT_NS } };
    if (timer_settime(dl->timer, TIMER_ABSTIME, &its, NULL) < 0)
        return sbx_fail(diag, SBX_E_KVM, "timer_settime for the call deadline failed: %s",
                        strerror(errno));
    return 0;
}

void sbx_deadline_disarm(struct sbx_deadline *dl)
{
    static const struct itimerspec stop;
    if (dl->has_timer)
        timer_settime(dl->timer, 0, &stop, NULL);
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
    if (dl->has_timer)
        timer_delete(dl->timer);
    dl->has_timer = false;
}
