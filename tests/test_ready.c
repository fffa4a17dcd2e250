/* test_ready.c - ready pools against real KVM: take and release from many
 * threads with every answer checked, faulting requests, failed resets,
 * background refill, and the memory a ready sandbox keeps resident.
 * usage: test_ready GUEST_DIR (tests/run-kvm.sh runs it natively or inside
 * the KVM VM). */
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "snapshot/snapshot.h"
#include "testutil.h"

static char guest_dir[512];

#define SNAP_COUNT 5 /* counter calls before the snapshot: every request answers 6 */

/* The hostile guest (counter, touch, fault_mid, abort) after SNAP_COUNT
 * counter calls, as a template of mem_size bytes. */
static struct sbx_template *counter_template(uint64_t mem_size)
{
    char path[600];
    snprintf(path, sizeof path, "%s/hostile.elf", guest_dir);
    struct sbx_sandbox *s = tu_sandbox_after(path, mem_size, "counter", SNAP_COUNT);
    struct sbx_template *t = tu_template_of(s);
    sbx_sandbox_destroy(s);
    return t;
}

static struct sbx_ready_pool *pool_of(const struct sbx_template *t, size_t target, size_t max,
                                      enum sbx_release_mode mode, uint32_t ws_requests)
{
    SBX_OPTS(sbx_config, cfg, .deadline_ms = 5000);
    SBX_OPTS(sbx_ready_pool_opts, o, .cfg = &cfg, .target = target, .max = max, .release = mode,
             .working_set_requests = ws_requests);
    struct sbx_ready_pool *p = NULL;
    struct sbx_diag d = { 0 };
    if (sbx_ready_pool_create(t, &o, &p, &d))
        fail_msg("ready pool: %s", d.msg);
    return p;
}

static struct sbx_ready_pool_stats stats_of(struct sbx_ready_pool *p)
{
    SBX_OPTS(sbx_ready_pool_stats, st);
    struct sbx_diag d = { 0 };
    if (sbx_ready_pool_stats(p, &st, &d))
        fail_msg("stats: %s", d.msg);
    return st;
}

static uint64_t call_u64(struct sbx_sandbox *s, const char *fn, uint64_t a, uint64_t b, size_t n,
                         struct sbx_diag *d, int *rc)
{
    struct sbx_value args[2] = { { .type = SBX_T_U64, .u.u64 = a }, { .type = SBX_T_U64, .u.u64 = b } };
    struct sbx_value r = { 0 };
    *rc = sbx_sandbox_call(s, fn, args, n, &r, d);
    return r.u.u64;
}

/* One request: the counter must answer the snapshot's value + 1, whatever
 * earlier requests on this sandbox did; then dirty some pages. */
static int request(struct sbx_sandbox *s, unsigned i, struct sbx_diag *d)
{
    int rc = 0;
    uint64_t c = call_u64(s, "counter", 0, 0, 0, d, &rc);
    if (rc)
        return rc;
    if (c != SNAP_COUNT + 1) {
        snprintf(d->msg, sizeof d->msg, "counter answered %llu, not %d", (unsigned long long)c,
                 SNAP_COUNT + 1);
        return -1;
    }
    call_u64(s, "touch", 1 + i % 32, i, 2, d, &rc);
    return rc;
}

struct worker {
    struct sbx_ready_pool *p;
    unsigned id, requests;
    int rc;
    char msg[sizeof ((struct sbx_diag *)0)->msg];
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct sbx_diag d = { 0 };
    for (unsigned i = 0; i < w->requests && w->rc == 0; i++) {
        struct sbx_sandbox *s = NULL;
        w->rc = sbx_ready_pool_take(w->p, 10000, &s, &d);
        if (w->rc == 0) {
            w->rc = request(s, w->id * 1000 + i, &d);
            int rel = sbx_ready_pool_release(w->p, s, &d);
            w->rc = w->rc ? w->rc : rel;
        }
    }
    snprintf(w->msg, sizeof w->msg, "%s", d.msg);
    return NULL;
}

static void check_threads(enum sbx_release_mode mode)
{
    enum { NTHREADS = 4, REQUESTS = 40 };
    struct sbx_template *t = counter_template(SBX_U64(8) << 20);
    struct sbx_ready_pool *p = pool_of(t, 2, 4, mode, 4);
    struct worker w[NTHREADS];
    pthread_t th[NTHREADS];
    for (unsigned i = 0; i < NTHREADS; i++) {
        w[i] = (struct worker){ .p = p, .id = i, .requests = REQUESTS };
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (unsigned i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        if (w[i].rc)
            fail_msg("worker %u: %d %s", i, w[i].rc, w[i].msg);
    }
    struct sbx_diag d = { 0 };
    assert_int_equal(sbx_ready_pool_wait(p, 30000, &d), 0);
    struct sbx_ready_pool_stats st = stats_of(p);
    assert_int_equal(st.takes, NTHREADS * REQUESTS);
    assert_int_equal(st.resets, NTHREADS * REQUESTS);
    assert_int_equal(st.replaced, 0);
    assert_int_equal(st.taken, 0);
    assert_int_equal(st.ready, 2); /* what a burst made beyond the target was retired */
    assert_int_equal(st.retired, st.misses);
    assert_true(st.working_set_pages > 0);
    sbx_ready_pool_free(p);
    sbx_template_free(t);
}

static void test_threads_inline(void **state) { (void)state; check_threads(SBX_RELEASE_INLINE); }
static void test_threads_background(void **state) { (void)state; check_threads(SBX_RELEASE_BACKGROUND); }

/* A request that faults (after writing pages) or aborts is followed, on the
 * same sandbox, by one that sees only the template. */
static void test_fault_does_not_poison_next(void **state)
{
    (void)state;
    struct sbx_template *t = counter_template(SBX_U64(8) << 20);
    struct sbx_ready_pool *p = pool_of(t, 1, 1, SBX_RELEASE_INLINE, 0);
    struct sbx_diag d = { 0 };
    struct sbx_sandbox *s = NULL, *first = NULL;
    for (int kind = 0; kind < 4; kind++) {
        assert_int_equal(sbx_ready_pool_take(p, 1000, &s, &d), 0);
        if (!first)
            first = s;
        assert_ptr_equal(s, first); /* max 1: the same sandbox every time */
        assert_int_equal(request(s, 3, &d), 0);
        int rc;
        struct sbx_value fm[2] = { { .type = SBX_T_I64, .u.i64 = kind },
                                   { .type = SBX_T_U64, .u.u64 = 20 } };
        struct sbx_value code = { .type = SBX_T_I32, .u.i32 = 9 };
        if (kind < 3)
            rc = sbx_sandbox_call(s, "fault_mid", fm, 2, NULL, &d);
        else
            rc = sbx_sandbox_call(s, "abort", &code, 1, NULL, &d);
        assert_int_equal(rc, kind < 3 ? SBX_E_GUEST_FAULT : SBX_E_GUEST_ABORT);
        assert_int_equal(sbx_ready_pool_release(p, s, &d), 0);
        assert_int_equal(sbx_ready_pool_take(p, 1000, &s, &d), 0);
        assert_ptr_equal(s, first);
        assert_false(sbx_sandbox_poisoned(s));
        assert_memory_equal(s->vm.mem, t->mem, t->mem_size);
        assert_int_equal(request(s, 5, &d), 0);
        assert_int_equal(sbx_ready_pool_release(p, s, &d), 0);
    }
    assert_int_equal(stats_of(p).replaced, 0);
    sbx_ready_pool_free(p);
    sbx_template_free(t);
}

/* A sandbox whose reset fails is destroyed, never handed out again, and the
 * pool makes a replacement. The reset is made to fail by swapping its vCPU
 * descriptor for one that refuses every KVM ioctl. */
static void test_failed_reset_replaces(void **state)
{
    (void)state;
    struct sbx_template *t = counter_template(SBX_U64(8) << 20);
    for (int mode = SBX_RELEASE_INLINE; mode <= SBX_RELEASE_BACKGROUND; mode++) {
        struct sbx_ready_pool *p = pool_of(t, 2, 2, (enum sbx_release_mode)mode, 0);
        struct sbx_diag d = { 0 };
        struct sbx_sandbox *s = NULL;
        assert_int_equal(sbx_ready_pool_take(p, 1000, &s, &d), 0);
        assert_int_equal(request(s, 1, &d), 0);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        assert_true(null >= 0);
        assert_int_equal(dup2(null, s->vm.vcpu_fd), s->vm.vcpu_fd);
        close(null);
        int rc = sbx_ready_pool_release(p, s, &d);
        assert_int_equal(rc, mode == SBX_RELEASE_INLINE ? SBX_E_KVM : 0);
        assert_int_equal(sbx_ready_pool_wait(p, 30000, &d), 0);
        struct sbx_ready_pool_stats st = stats_of(p);
        assert_int_equal(st.replaced, 1);
        assert_int_equal(st.ready, 2);
        assert_true(st.refills >= 1);
        for (int i = 0; i < 2; i++) { /* both ready sandboxes answer */
            struct sbx_sandbox *a = NULL, *b = NULL;
            assert_int_equal(sbx_ready_pool_take(p, 1000, &a, &d), 0);
            assert_int_equal(sbx_ready_pool_take(p, 1000, &b, &d), 0);
            assert_int_equal(request(a, 2, &d), 0);
            assert_int_equal(request(b, 2, &d), 0);
            assert_int_equal(sbx_ready_pool_release(p, a, &d), 0);
            assert_int_equal(sbx_ready_pool_release(p, b, &d), 0);
        }
        sbx_ready_pool_free(p);
    }
    sbx_template_free(t);
}

/* A burst of takes beyond the target restores more sandboxes on the takers'
 * threads, up to max; at max, take waits and then times out; what the burst
 * made is retired when it comes back, so the pool returns to its target. */
static void test_burst_and_limit(void **state)
{
    (void)state;
    struct sbx_template *t = counter_template(SBX_U64(8) << 20);
    struct sbx_ready_pool *p = pool_of(t, 3, 6, SBX_RELEASE_BACKGROUND, 0);
    struct sbx_diag d = { 0 };
    struct sbx_sandbox *s[6];
    for (int i = 0; i < 6; i++)
        assert_int_equal(sbx_ready_pool_take(p, 1000, &s[i], &d), 0);
    struct sbx_ready_pool_stats st = stats_of(p);
    assert_int_equal(st.taken, 6);
    assert_int_equal(st.misses, 3);
    assert_int_equal(st.refills, 0);
    struct sbx_sandbox *extra = NULL;
    assert_int_equal(sbx_ready_pool_take(p, 50, &extra, &d), SBX_E_TIMEOUT);
    assert_non_null(strstr(d.msg, "limit of 6"));
    for (int i = 0; i < 6; i++) {
        assert_int_equal(request(s[i], (unsigned)i, &d), 0);
        assert_int_equal(sbx_ready_pool_release(p, s[i], &d), 0);
    }
    assert_int_equal(sbx_ready_pool_wait(p, 30000, &d), 0);
    st = stats_of(p);
    assert_int_equal(st.ready, 3);
    assert_int_equal(st.resets, 6);
    assert_int_equal(st.retired, 3);
    /* taken while its reset runs: take waits for it rather than restoring */
    assert_int_equal(sbx_ready_pool_take(p, 1000, &s[0], &d), 0);
    assert_int_equal(sbx_ready_pool_release(p, s[0], &d), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sbx_ready_pool_take(p, 30000, &s[i], &d), 0);
    assert_int_equal(stats_of(p).misses, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sbx_ready_pool_release(p, s[i], &d), 0);
    /* another pool's sandbox is refused */
    struct sbx_ready_pool *q = pool_of(t, 1, 1, SBX_RELEASE_INLINE, 0);
    assert_int_equal(sbx_ready_pool_take(q, 1000, &extra, &d), 0);
    assert_int_equal(sbx_ready_pool_release(p, extra, &d), SBX_E_INVAL);
    assert_int_equal(sbx_ready_pool_release(q, extra, &d), 0);
    sbx_ready_pool_free(q);
    sbx_ready_pool_free(p);
    sbx_template_free(t);
}

static uint64_t resident_pages(const void *mem, uint64_t len)
{
    size_t n = (size_t)(len / SBX_PAGE_SIZE);
    unsigned char *vec = malloc(n);
    assert_non_null(vec);
    assert_int_equal(mincore((void *)mem, (size_t)len, vec), 0);
    uint64_t r = 0;
    for (size_t i = 0; i < n; i++)
        r += vec[i] & 1;
    free(vec);
    return r;
}

/* Density: a large guest's ready sandbox holds its template's pages and its
 * working set, not its memory size; a request that once dirtied many pages
 * outside the working set leaves none of them resident after its reset. */
static void test_resident_is_working_set(void **state)
{
    (void)state;
    struct sbx_template *t = counter_template(SBX_U64(64) << 20);
    uint64_t stored = 0;
    for (uint64_t pg = 0; pg < t->mem_size / SBX_PAGE_SIZE; pg++)
        stored += sbx_template_page_stored(t, pg);
    struct sbx_ready_pool *p = pool_of(t, 1, 1, SBX_RELEASE_INLINE, 2);
    struct sbx_diag d = { 0 };
    struct sbx_sandbox *s = NULL;
    for (int i = 0; i < 3; i++) { /* two requests make the working set, the third trims */
        assert_int_equal(sbx_ready_pool_take(p, 1000, &s, &d), 0);
        assert_int_equal(request(s, 7, &d), 0); /* touch 8 pages */
        assert_int_equal(sbx_ready_pool_release(p, s, &d), 0);
    }
    struct sbx_ready_pool_stats st = stats_of(p);
    assert_true(st.working_set_pages >= stored);
    uint64_t slack = 256 * 1024 / SBX_PAGE_SIZE;
    assert_int_equal(sbx_ready_pool_take(p, 1000, &s, &d), 0);
    uint64_t before = resident_pages(s->vm.mem, s->vm.mem_size);
    assert_true(before <= st.working_set_pages + slack);
    int rc = 0;
    assert_int_equal(call_u64(s, "touch", 2000, 1, 2, &d, &rc), 2000);
    assert_int_equal(rc, 0);
    assert_true(resident_pages(s->vm.mem, s->vm.mem_size) >= 2000);
    assert_int_equal(sbx_ready_pool_release(p, s, &d), 0);
    assert_int_equal(sbx_ready_pool_take(p, 1000, &s, &d), 0);
    assert_true(resident_pages(s->vm.mem, s->vm.mem_size) <= st.working_set_pages + slack);
    assert_memory_equal(s->vm.mem, t->mem, t->mem_size);
    assert_int_equal(request(s, 7, &d), 0);
    assert_int_equal(sbx_ready_pool_release(p, s, &d), 0);
    sbx_ready_pool_free(p);
    sbx_template_free(t);
}

/* Options are checked: max below target, an unknown release mode. */
static void test_bad_options(void **state)
{
    (void)state;
    struct sbx_template *t = counter_template(SBX_U64(8) << 20);
    struct sbx_ready_pool *p = NULL;
    struct sbx_diag d = { 0 };
    SBX_OPTS(sbx_ready_pool_opts, o, .target = 4, .max = 2);
    assert_int_equal(sbx_ready_pool_create(t, &o, &p, &d), SBX_E_INVAL);
    assert_non_null(strstr(d.msg, "below target"));
    o.max = 0, o.release = (enum sbx_release_mode)7;
    assert_int_equal(sbx_ready_pool_create(t, &o, &p, &d), SBX_E_INVAL);
    assert_null(p);
    SBX_OPTS(sbx_config, dbg, .gdb_addr = "127.0.0.1:1234");
    o.release = SBX_RELEASE_INLINE, o.cfg = &dbg;
    assert_int_equal(sbx_ready_pool_create(t, &o, &p, &d), SBX_E_INVAL);
    assert_non_null(strstr(d.msg, "gdb"));
    sbx_template_free(t);
}

int main(int argc, char **argv)
{
    snprintf(guest_dir, sizeof guest_dir, "%s", argc > 1 ? argv[1] : "build/guests");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_inline),
        cmocka_unit_test(test_threads_background),
        cmocka_unit_test(test_fault_does_not_poison_next),
        cmocka_unit_test(test_failed_reset_replaces),
        cmocka_unit_test(test_burst_and_limit),
        cmocka_unit_test(test_resident_is_working_set),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
