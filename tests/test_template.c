/* test_template.c - request-time restore against real KVM: templates, pools,
 * reset after calls that wrote memory and registers, many sandboxes in threads.
 * usage: test_template GUEST_DIR (tests/run-kvm.sh runs it natively or inside
 * the KVM VM). */
#include <errno.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snapshot/snapshot.h"
#include "testutil.h"

static char guest_dir[512];

/* A demo sandbox with mem_size bytes, after counter was called `calls` times,
 * frozen into a template. */
static struct sbx_template *demo_template(uint64_t mem_size, int calls)
{
    char path[600];
    snprintf(path, sizeof path, "%s/demo.elf", guest_dir);
    struct sbx_sandbox *s = tu_sandbox_after(path, mem_size, "counter", calls);
    /* a request's data before the snapshot must not reach the template either */
    struct sbx_diag d = { 0 };
    struct sbx_value secret = { .type = SBX_T_STR, .u.buf = { "before-snapshot", 15 } };
    if (sbx_sandbox_call(s, "echo", &secret, 1, NULL, &d))
        fail_msg("echo: %s", d.msg);
    struct sbx_template *t = tu_template_of(s);
    assert_null(memmem(t->mem, t->mem_size, "before-snapshot", 15));
    sbx_sandbox_destroy(s);
    return t;
}

static struct sbx_sandbox *from_template(const struct sbx_template *t, enum sbx_mem_mode mode,
                                         struct sbx_pool *pool)
{
    SBX_OPTS(sbx_config, cfg, .deadline_ms = 5000, .mem_mode = mode);
    struct sbx_sandbox *s = NULL;
    struct sbx_diag d = { 0 };
    if (sbx_sandbox_from_template(t, &cfg, pool, &s, &d))
        fail_msg("from template: %s", d.msg);
    return s;
}

static uint64_t counter(struct sbx_sandbox *s)
{
    struct sbx_value r;
    struct sbx_diag d = { 0 };
    if (sbx_sandbox_call(s, "counter", NULL, 0, &r, &d))
        fail_msg("counter: %s", d.msg);
    return r.u.u64;
}

static void call_str(struct sbx_sandbox *s, const char *fn, const char *arg, struct sbx_value *r)
{
    struct sbx_value a = { .type = SBX_T_STR, .u.buf = { arg, strlen(arg) } };
    struct sbx_diag d = { 0 };
    if (sbx_sandbox_call(s, fn, &a, 1, r, &d))
        fail_msg("%s: %s", fn, d.msg);
}

static void peek(struct sbx_sandbox *s, size_t n, struct sbx_value *r)
{
    struct sbx_value a = { .type = SBX_T_U64, .u.u64 = n };
    struct sbx_diag d = { 0 };
    if (sbx_sandbox_call(s, "peek", &a, 1, r, &d))
        fail_msg("peek: %s", d.msg);
}

/* Guest memory and vCPU registers equal the template's, byte for byte. */
static void assert_at_template(struct sbx_sandbox *s, const struct sbx_template *t)
{
    assert_int_equal(s->vm.mem_size, t->mem_size);
    assert_memory_equal(s->vm.mem, t->mem, t->mem_size);
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    assert_int_equal(ioctl(s->vm.vcpu_fd, KVM_GET_REGS, &regs), 0);
    assert_int_equal(ioctl(s->vm.vcpu_fd, KVM_GET_SREGS, &sregs), 0);
    assert_memory_equal(&regs, &t->vcpu.regs, sizeof regs);
    assert_int_equal(sregs.cr3, t->vcpu.sregs.cr3);
    assert_int_equal(sregs.efer, t->vcpu.sregs.efer);
    assert_false(sbx_sandbox_poisoned(s));
}

/* A request that writes the buffer, the counter, 100 heap pages and
 * registers, then a reset: everything is back, nothing of it is readable. */
static void check_reset(enum sbx_mem_mode mode, bool pooled)
{
    struct sbx_template *t = demo_template(8u << 20, 3);
    struct sbx_pool *pool = NULL;
    struct sbx_diag d = { 0 };
    if (pooled && sbx_pool_create(t->mem_size, 1, &pool, &d))
        fail_msg("pool: %s", d.msg);
    struct sbx_sandbox *s = from_template(t, mode, pool);
    if (pool)
        assert_int_equal(sbx_pool_available(pool), 0); /* the sandbox took the pooled VM */
    assert_at_template(s, t);
    for (int round = 0; round < 3; round++) {
        assert_int_equal(counter(s), 4);
        struct sbx_value r;
        /* long enough to reach exchange-area pages that only the host writes */
        static char request[12000];
        for (size_t i = 0; i + 1 < sizeof request; i++)
            request[i] = "request secret "[i % 15];
        call_str(s, "upper", request, &r);
        assert_memory_equal(r.u.buf.ptr, "REQUEST SECRET", 14);
        struct sbx_value pages = { .type = SBX_T_U64, .u.u64 = 100 };
        if (sbx_sandbox_call(s, "touch", &pages, 1, &r, &d))
            fail_msg("touch: %s", d.msg);
        assert_int_equal(r.u.u64, 100); /* each touched page went from 0 to 1 */
        if (sbx_sandbox_reset(s, &d))
            fail_msg("reset: %s", d.msg);
        assert_at_template(s, t);
        peek(s, 14, &r);
        static const uint8_t zeros[14];
        assert_memory_equal(r.u.buf.ptr, zeros, 14);
        assert_null(memmem(s->vm.mem, s->vm.mem_size, "request secret", 14));
        if (sbx_sandbox_reset(s, &d))
            fail_msg("reset: %s", d.msg);
    }
    sbx_sandbox_destroy(s);
    sbx_pool_free(pool);
    sbx_template_free(t);
}

static void test_reset_copy_pooled(void **state) { (void)state; check_reset(SBX_MEM_COPY, true); }
static void test_reset_copy_unpooled(void **state) { (void)state; check_reset(SBX_MEM_COPY, false); }
static void test_reset_cow_pooled(void **state) { (void)state; check_reset(SBX_MEM_COW, true); }
static void test_reset_cow_unpooled(void **state) { (void)state; check_reset(SBX_MEM_COW, false); }

/* The default mode restores the frozen state: calls continue from it. */
static void test_default_mode_continues_from_template(void **state)
{
    (void)state;
    struct sbx_template *t = demo_template(8u << 20, 5);
    struct sbx_sandbox *a = from_template(t, SBX_MEM_DEFAULT, NULL);
    assert_int_equal(counter(a), 6);
    struct sbx_value r;
    call_str(a, "upper", "abc", &r);
    assert_memory_equal(r.u.buf.ptr, "ABC", 3);
    sbx_sandbox_destroy(a);
    sbx_template_free(t);
}

/* The hostile guest created cold (s), frozen into a template (t), and a
 * sandbox restored from it (r): every stage a test may want. */
struct hostile {
    struct sbx_guest *g;
    struct sbx_sandbox *s, *r;
    struct sbx_snapshot *snap;
    struct sbx_template *t;
};

static void hostile_open(struct hostile *h, const struct sbx_config *cfg)
{
    char path[600];
    snprintf(path, sizeof path, "%s/hostile.elf", guest_dir);
    struct sbx_diag d = { 0 };
    *h = (struct hostile){ 0 };
    if (sbx_guest_load(path, NULL, &h->g, &d) || sbx_sandbox_create(h->g, cfg, &h->s, &d) ||
        sbx_snapshot_take(h->s, NULL, &h->snap, &d) ||
        sbx_template_from_snapshot(h->snap, &h->t, &d) ||
        sbx_sandbox_from_template(h->t, cfg, NULL, &h->r, &d))
        fail_msg("%s: %s", path, d.msg);
}

static void hostile_close(struct hostile *h)
{
    sbx_sandbox_destroy(h->r);
    sbx_sandbox_destroy(h->s);
    sbx_template_free(h->t);
    sbx_snapshot_free(h->snap);
    sbx_guest_free(h->g);
}

static void test_reset_clears_poison(void **state)
{
    (void)state;
    struct hostile h;
    hostile_open(&h, NULL);
    struct sbx_diag d = { 0 };
    struct sbx_value code = { .type = SBX_T_I32, .u.i32 = 7 };
    assert_int_equal(sbx_sandbox_call(h.r, "abort", &code, 1, NULL, &d), SBX_E_GUEST_ABORT);
    assert_int_equal(sbx_sandbox_call(h.r, "abort", &code, 1, NULL, &d), SBX_E_POISONED);
    assert_int_equal(sbx_sandbox_reset(h.r, &d), 0);
    assert_int_equal(sbx_sandbox_call(h.r, "abort", &code, 1, NULL, &d), SBX_E_GUEST_ABORT);
    assert_int_equal(d.abort_code, 7);
    /* a sandbox made without a template has nothing to reset to */
    assert_int_equal(sbx_sandbox_reset(h.s, &d), SBX_E_INVAL);
    tu_assert_contains(d.msg, "not made by sbx_sandbox_from_template");
    hostile_close(&h);
}

static void test_pool_rejects_bad_size_and_skips_other_sizes(void **state)
{
    (void)state;
    struct sbx_diag d = { 0 };
    struct sbx_pool *pool = NULL;
    assert_int_equal(sbx_pool_create(3u << 20, 1, &pool, &d), SBX_E_LIMIT);
    tu_assert_contains(d.msg, "not a multiple of 2 MiB");
    struct sbx_template *t = demo_template(8u << 20, 0);
    if (sbx_pool_create(16u << 20, 2, &pool, &d))
        fail_msg("pool: %s", d.msg);
    struct sbx_sandbox *s = from_template(t, SBX_MEM_COPY, pool);
    assert_int_equal(sbx_pool_available(pool), 2); /* 16 MiB VMs do not fit an 8 MiB template */
    assert_int_equal(counter(s), 1);
    sbx_sandbox_destroy(s);
    sbx_pool_free(pool);
    sbx_template_free(t);
}

/* The deadline timer a sandbox keeps signals the thread that calls it: called
 * from a new thread, a spinning guest must still time out there. */
struct spin_call {
    struct sbx_sandbox *s;
    int rc;
};

static void *spin_in_thread(void *arg)
{
    struct spin_call *c = arg;
    struct sbx_diag d = { 0 };
    c->rc = sbx_sandbox_call(c->s, "spin", NULL, 0, NULL, &d);
    return NULL;
}

static void test_deadline_follows_the_calling_thread(void **state)
{
    (void)state;
    SBX_OPTS(sbx_config, cfg, .deadline_ms = 300);
    struct hostile h;
    hostile_open(&h, &cfg);
    struct sbx_diag d = { 0 };
    alarm(120); /* a deadline that never fires would hang here: fail instead */
    struct spin_call c = { .s = h.r };
    spin_in_thread(&c);
    assert_int_equal(c.rc, SBX_E_TIMEOUT);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sbx_sandbox_reset(h.r, &d), 0);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, spin_in_thread, &c), 0);
        pthread_join(th, NULL);
        assert_int_equal(c.rc, SBX_E_TIMEOUT);
    }
    alarm(0);
    hostile_close(&h);
}

/* ---- many sandboxes, several threads, one template ---- */

#define THREADS 4
#define PER_THREAD 25

struct worker {
    const struct sbx_template *t;
    struct sbx_pool *pool;
    int id;
    char error[600]; /* cmocka cannot fail from another thread: report here */
};

#define WORKER_FAIL(w, ...) \
    do { snprintf((w)->error, sizeof (w)->error, __VA_ARGS__); goto out; } while (0)

static int worker_request(struct worker *w, struct sbx_sandbox *s, int n, struct sbx_diag *d)
{
    char mine[32];
    int len = snprintf(mine, sizeof mine, "thread %d sandbox %d", w->id, n);
    struct sbx_value a = { .type = SBX_T_STR, .u.buf = { mine, (size_t)len } }, r;
    if (sbx_sandbox_call(s, "upper", &a, 1, &r, d))
        return -1;
    struct sbx_value c;
    if (sbx_sandbox_call(s, "counter", NULL, 0, &c, d) || c.u.u64 != 3) {
        snprintf(d->msg, sizeof d->msg, "counter %llu, expected 3", (unsigned long long)c.u.u64);
        return -1;
    }
    struct sbx_value np = { .type = SBX_T_U64, .u.u64 = (uint64_t)len };
    if (sbx_sandbox_call(s, "peek", &np, 1, &r, d))
        return -1;
    for (int i = 0; i < len; i++) /* only this request's data, upper-cased */
        if (((const char *)r.u.buf.ptr)[i] != (mine[i] >= 'a' && mine[i] <= 'z' ? mine[i] - 32 : mine[i])) {
            snprintf(d->msg, sizeof d->msg, "sandbox sees '%.*s', not its own '%s'",
                     len, (const char *)r.u.buf.ptr, mine);
            return -1;
        }
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct sbx_sandbox *sb[PER_THREAD] = { 0 };
    struct sbx_diag d = { 0 };
    SBX_OPTS(sbx_config, cfg, .deadline_ms = 20000,
             .mem_mode = w->id % 2 ? SBX_MEM_COW : SBX_MEM_COPY);
    for (int i = 0; i < PER_THREAD; i++) /* all alive at once */
        if (sbx_sandbox_from_template(w->t, &cfg, w->pool, &sb[i], &d))
            WORKER_FAIL(w, "thread %d: restore %d: %s", w->id, i, d.msg);
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < PER_THREAD; i++) {
            if (worker_request(w, sb[i], i, &d))
                WORKER_FAIL(w, "thread %d sandbox %d round %d: %s", w->id, i, round, d.msg);
            if (sbx_sandbox_reset(sb[i], &d))
                WORKER_FAIL(w, "thread %d: reset %d: %s", w->id, i, d.msg);
        }
out:
    for (int i = 0; i < PER_THREAD; i++)
        sbx_sandbox_destroy(sb[i]);
    return NULL;
}

static void test_many_sandboxes_in_threads(void **state)
{
    (void)state;
    struct sbx_template *t = demo_template(4u << 20, 2);
    struct sbx_pool *pool = NULL;
    struct sbx_diag d = { 0 };
    if (sbx_pool_create(t->mem_size, 20, &pool, &d))
        fail_msg("pool: %s", d.msg);
    struct worker w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){ .t = t, .pool = pool, .id = i };
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < THREADS; i++)
        if (w[i].error[0])
            fail_msg("%s", w[i].error);
    assert_int_equal(sbx_pool_available(pool), 0);
    sbx_pool_free(pool);
    sbx_template_free(t);
}

/* In a child: confined, the thread still restores, calls and resets, and a
 * call outside the allowlist (a socket, a new program) is refused. */
static int confined_child(const struct sbx_template *t)
{
    /* A pool made before confinement, as a server would; a VM of the parent
     * cannot serve here (KVM binds a VM to the process that made it). */
    struct sbx_pool *pool = NULL;
    struct sbx_diag d = { 0 };
    if (sbx_pool_create(SBX_U64(8) << 20, 1, &pool, &d))
        return 9;
    if (sbx_seccomp_confine(SBX_SECCOMP_ERRNO, &d))
        return 10;
    struct sbx_sandbox *s = NULL;
    SBX_OPTS(sbx_config, cfg, .deadline_ms = 5000);
    if (sbx_sandbox_from_template(t, &cfg, pool, &s, &d))
        return 11;
    struct sbx_value r;
    for (int i = 0; i < 3; i++) {
        if (sbx_sandbox_call(s, "counter", NULL, 0, &r, &d) || r.u.u64 != 4)
            return 12;
        if (sbx_sandbox_reset(s, &d))
            return 13;
    }
    if (socket(AF_INET, SOCK_STREAM, 0) != -1 || errno != EPERM)
        return 14;
    char *argv[] = { "/bin/true", NULL };
    execv(argv[0], argv);
    if (errno != EPERM)
        return 15;
    sbx_sandbox_destroy(s);
    return 0;
}

static void test_seccomp_confines_a_serving_thread(void **state)
{
    (void)state;
    struct sbx_template *t = demo_template(SBX_U64(8) << 20, 3);
    tu_in_child(confined_child, t);
    struct sbx_diag bad = { 0 };
    assert_int_equal(sbx_seccomp_confine(0x80, &bad), SBX_E_INVAL);
    sbx_template_free(t);
}

int main(int argc, char **argv)
{
    snprintf(guest_dir, sizeof guest_dir, "%s", argc > 1 ? argv[1] : "build/guests");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reset_copy_pooled),
        cmocka_unit_test(test_reset_copy_unpooled),
        cmocka_unit_test(test_reset_cow_pooled),
        cmocka_unit_test(test_reset_cow_unpooled),
        cmocka_unit_test(test_default_mode_continues_from_template),
        cmocka_unit_test(test_reset_clears_poison),
        cmocka_unit_test(test_pool_rejects_bad_size_and_skips_other_sizes),
        cmocka_unit_test(test_deadline_follows_the_calling_thread),
        cmocka_unit_test(test_many_sandboxes_in_threads),
        cmocka_unit_test(test_seccomp_confines_a_serving_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
