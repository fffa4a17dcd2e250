/* test_libc.c - guests on the C library (musl) against real KVM: the start-up
 * musl expects, the system-call layer inside the guest, the restore hook.
 * usage: test_libc GUEST_DIR (tests/run-kvm.sh runs it natively or inside
 * the KVM VM). */
#include <sys/ioctl.h>
#include <sys/wait.h>

#include "snapshot/snapshot.h"
#include "testutil.h"

#define MSR_LSTAR 0xc0000082u

static char guest_dir[512], cli_path[512];
static struct tu_log logs;

static struct sbx_sandbox *libc_sandbox(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/libctest.elf", guest_dir);
    struct sbx_diag d = { 0 };
    struct sbx_guest *g = NULL;
    struct sbx_sandbox *s = NULL;
    memset(&logs, 0, sizeof logs);
    SBX_OPTS(sbx_config, cfg, .deadline_ms = 20000, .log = tu_log_cb, .log_ctx = &logs);
    if (sbx_guest_load(path, NULL, &g, &d) || sbx_sandbox_create(g, &cfg, &s, &d))
        fail_msg("%s: %s", path, d.msg);
    sbx_guest_free(g);
    return s;
}

static struct sbx_value call(struct sbx_sandbox *s, const char *fn, const struct sbx_value *args,
                             size_t n)
{
    struct sbx_value r = { 0 };
    struct sbx_diag d = { 0 };
    if (sbx_sandbox_call(s, fn, args, n, &r, &d))
        fail_msg("%s: %s", fn, d.msg);
    return r;
}

static struct sbx_value i64(int64_t v) { return (struct sbx_value){ .type = SBX_T_I64, .u.i64 = v }; }
static struct sbx_value str(const char *v)
{
    return (struct sbx_value){ .type = SBX_T_STR, .u.buf = { v, strlen(v) } };
}

static void test_printf_reaches_the_log_line_by_line(void **state)
{
    (void)state;
    struct sbx_sandbox *s = libc_sandbox();
    struct sbx_value a = str("world");
    assert_int_equal(call(s, "say", &a, 1).u.i64, 12);
    tu_assert_contains(logs.all, "hello world\n");
    assert_int_equal(logs.last_level, SBX_LOG_WARN); /* stderr, flushed at the call's end */
    tu_assert_contains(logs.last, "to stderr");
    sbx_sandbox_destroy(s);
}

static void test_malloc_free_reuse_ten_times_the_heap(void **state)
{
    (void)state;
    struct sbx_sandbox *s = libc_sandbox();
    /* 8 MiB of guest memory, 6 MiB of heap: 64 rounds of 1-2 MiB blocks
     * succeed only if freed memory is used again. */
    struct sbx_value a = i64(64);
    assert_int_equal(call(s, "churn", &a, 1).u.i64, 64);
    assert_int_equal(call(s, "churn", &a, 1).u.i64, 64);
    sbx_sandbox_destroy(s);
}

static void test_c_library_functions(void **state)
{
    (void)state;
    struct sbx_sandbox *s = libc_sandbox();
    struct sbx_value a = str("2.5e3");
    assert_true(call(s, "parse", &a, 1).u.f64 == 2500.0);
    a = (struct sbx_value){ .type = SBX_T_F64, .u.f64 = 3.14159 };
    struct sbx_value r = call(s, "format", &a, 1);
    assert_int_equal(r.u.buf.len, strlen("3.142|   42|ab  |ff"));
    assert_memory_equal(r.u.buf.ptr, "3.142|   42|ab  |ff", r.u.buf.len);
    a = (struct sbx_value){ .type = SBX_T_BYTES, .u.buf = { "dcba", 4 } };
    r = call(s, "sort", &a, 1);
    assert_memory_equal(r.u.buf.ptr, "abcd", 4);
    struct sbx_value m[2] = { str("^a+b(c|d)$"), str("aaabd") };
    assert_int_equal(call(s, "match", m, 2).u.i64, 1);
    m[1] = str("aaabe");
    assert_int_equal(call(s, "match", m, 2).u.i64, 0);
    sbx_sandbox_destroy(s);
}

static void test_thread_local_constructor_and_avx2(void **state)
{
    (void)state;
    struct sbx_sandbox *s = libc_sandbox();
    assert_int_equal(call(s, "tls", NULL, 0).u.i64, 41);
    assert_int_equal(call(s, "tls", NULL, 0).u.i64, 42);
    assert_int_equal(call(s, "constructed", NULL, 0).u.i64, 42);
    struct sbx_value n = i64(64);
    int64_t sum = call(s, "avx2", &n, 1).u.i64;
    unsigned b = 0;
    __asm__("cpuid" : "=b"(b) : "a"(7), "c"(0) : "edx");
    if ((b >> 5) & 1) /* the host offers AVX2: the guest computes with it */
        assert_int_equal(sum, 64 * 65 / 2);
    else
        assert_int_equal(sum, -1);
    sbx_sandbox_destroy(s);
}

static void test_system_calls(void **state)
{
    (void)state;
    struct sbx_sandbox *s = libc_sandbox();
    /* each call of the table made directly, as documented (a bit per failed check) */
    assert_int_equal(call(s, "table", NULL, 0).u.i64, 0);
    tu_assert_contains(logs.all, "table\n");
    assert_int_equal(call(s, "read_stdin", NULL, 0).u.i64, 0); /* end of file */
    struct sbx_value clk = i64(0);
    int64_t real = call(s, "clock_ms", &clk, 1).u.i64;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t host = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    assert_true(real <= host && real > host - 60000);
    clk = i64(1);
    int64_t m1 = call(s, "clock_ms", &clk, 1).u.i64, m2 = call(s, "clock_ms", &clk, 1).u.i64;
    assert_true(m2 >= m1);
    /* unsupported: -ENOSYS twice, logged once per call */
    int before = logs.count;
    assert_int_equal(call(s, "nosys", NULL, 0).u.i64, 38 /* ENOSYS */);
    assert_int_equal(logs.count, before + 1);
    tu_assert_contains(logs.last, "unsupported system call 41");
    call(s, "nosys", NULL, 0);
    assert_int_equal(logs.count, before + 2); /* again in the next call */
    /* exit ends the call as an abort with the exit code */
    struct sbx_value code = i64(7);
    struct sbx_diag d = { 0 };
    assert_int_equal(sbx_sandbox_call(s, "quit", &code, 1, NULL, &d), SBX_E_GUEST_ABORT);
    assert_int_equal(d.abort_code, 7);
    tu_assert_contains(logs.all, "leaving\n");
    sbx_sandbox_destroy(s);
}

/* Two sandboxes from one snapshot draw different random bytes; the restore
 * hook runs once per restore and reset; a request's LSTAR does not survive. */
/* The libc guest after its initialisation, as a template. */
static struct sbx_template *libc_template(void)
{
    struct sbx_sandbox *s = libc_sandbox();
    struct sbx_template *t = tu_template_of(s);
    sbx_sandbox_destroy(s);
    return t;
}

static void test_restore_entropy_hook_and_syscall_msr(void **state)
{
    (void)state;
    struct sbx_template *t = libc_template();
    struct sbx_diag d = { 0 };
    SBX_OPTS(sbx_config, cfg, .deadline_ms = 20000);
    struct sbx_sandbox *a = NULL, *b = NULL;
    if (sbx_sandbox_from_template(t, &cfg, NULL, &a, &d) ||
        sbx_sandbox_from_template(t, &cfg, NULL, &b, &d))
        fail_msg("restore: %s", d.msg);
    struct sbx_value ra = call(a, "entropy", NULL, 0);
    uint8_t first[16];
    memcpy(first, ra.u.buf.ptr, 16);
    struct sbx_value rb = call(b, "entropy", NULL, 0);
    assert_memory_not_equal(first, rb.u.buf.ptr, 16);
    /* the host wrote those bytes into guest memory, not the guest: a reset puts
     * them back too, though KVM's dirty log never saw them */
    if (sbx_sandbox_reset(b, &d))
        fail_msg("reset: %s", d.msg);
    assert_memory_equal(b->vm.mem, t->mem, t->mem_size);
    assert_int_equal(call(a, "restored", NULL, 0).u.i64, 1);
    assert_int_equal(call(a, "restored", NULL, 0).u.i64, 1);
    struct sbx_vcpu_state *st = malloc(sizeof *st);
    assert_non_null(st);
    for (int i = 0; i < 3; i++) {
        if (sbx_sandbox_reset(a, &d))
            fail_msg("reset: %s", d.msg);
        assert_int_equal(call(a, "restored", NULL, 0).u.i64, 1); /* memory went back too */
    }
    /* a request that breaks the syscall entry and TLS affects only itself */
    call(a, "clobber", NULL, 0);
    struct sbx_value w = str("again");
    assert_int_not_equal(sbx_sandbox_call(a, "say", &w, 1, NULL, &d), 0);
    if (sbx_sandbox_reset(a, &d))
        fail_msg("reset: %s", d.msg);
    assert_int_equal(call(a, "say", &w, 1).u.i64, 12);
    assert_int_equal(call(a, "tls", NULL, 0).u.i64, 41);
    /* the syscall entry the guest library installed is part of the state */
    assert_int_equal(sbx_vcpu_save(&a->vm, st, &d), 0);
    bool found = false;
    for (uint32_t i = 0; i < st->nmsrs; i++)
        if (st->msrs[i].index == MSR_LSTAR)
            found = st->msrs[i].data != 0;
    assert_true(found);
    free(st);
    sbx_sandbox_destroy(a);
    sbx_sandbox_destroy(b);
    sbx_template_free(t);
}

/* A serving thread confined by seccomp still answers a guest that asks the
 * host for random bytes (getrandom, through the guest's C library). */
static int confined_entropy(const struct sbx_template *t)
{
    struct sbx_diag d = { 0 };
    if (sbx_seccomp_confine(SBX_SECCOMP_ERRNO, &d))
        return 10;
    struct sbx_sandbox *s = NULL;
    SBX_OPTS(sbx_config, cfg, .deadline_ms = 20000);
    struct sbx_value r;
    if (sbx_sandbox_from_template(t, &cfg, NULL, &s, &d))
        return 11;
    for (int i = 0; i < 3; i++)
        if (sbx_sandbox_call(s, "entropy", NULL, 0, &r, &d) || r.u.buf.len != 16 ||
            sbx_sandbox_reset(s, &d))
            return 12;
    sbx_sandbox_destroy(s);
    return 0;
}

static void test_entropy_under_seccomp(void **state)
{
    (void)state;
    struct sbx_template *t = libc_template();
    tu_in_child(confined_entropy, t);
    sbx_template_free(t);
}

/* Run a shell command; its whole stdout, and its exit status in *status. */
static char *run(const char *cmd, int *status)
{
    static char out[8192];
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

/* The examples as a user runs them: a warm snapshot with a long init, then
 * requests served from it. */
static void test_examples_from_the_cli(void **state)
{
    (void)state;
    char cmd[2048];
    int st;
    snprintf(cmd, sizeof cmd, "%s create %s/rules.elf -o /tmp/rules.snap --mem 64M "
             "--deadline 120000 --warm 'match /api/users/1' 2>&1", cli_path, guest_dir);
    tu_assert_contains(run(cmd, &st), "created /tmp/rules.snap");
    assert_int_equal(st, 0);
    /* rule 4 is [?&]p1=[0-9]{2,5}(&|$); rule 10 is (drop|union|select)[[:space:]]+t2 */
    snprintf(cmd, sizeof cmd, "%s call /tmp/rules.snap match '/x?p1=123&q=select t2' "
             "--requests 3 --json", cli_path);
    tu_assert_contains(run(cmd, &st), "\"results\": [\"4,10\", \"4,10\", \"4,10\"]");
    assert_int_equal(st, 0);
    snprintf(cmd, sizeof cmd, "%s create %s/wordfreq.elf -o /tmp/wf.snap >/dev/null 2>&1 && "
             "printf 'b a b c b a' | %s call /tmp/wf.snap top @- 2", cli_path, guest_dir, cli_path);
    tu_assert_contains(run(cmd, &st), "b 3\na 2\n");
    assert_int_equal(st, 0);
    /* a deadline shorter than the rules' init: a timeout, exit 11, no file */
    snprintf(cmd, sizeof cmd, "%s create %s/rules.elf -o /tmp/short.snap --mem 64M "
             "--deadline 5 2>&1; test ! -e /tmp/short.snap", cli_path, guest_dir);
    tu_assert_contains(run(cmd, &st), "deadline");
    assert_int_equal(st, 0);
}

int main(int argc, char **argv)
{
    snprintf(guest_dir, sizeof guest_dir, "%s", argc > 1 ? argv[1] : "build/guests");
    snprintf(cli_path, sizeof cli_path, "%s", argc > 2 ? argv[2] : "build/snapbox");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_printf_reaches_the_log_line_by_line),
        cmocka_unit_test(test_malloc_free_reuse_ten_times_the_heap),
        cmocka_unit_test(test_c_library_functions),
        cmocka_unit_test(test_thread_local_constructor_and_avx2),
        cmocka_unit_test(test_system_calls),
        cmocka_unit_test(test_restore_entropy_hook_and_syscall_msr),
        cmocka_unit_test(test_entropy_under_seccomp),
        cmocka_unit_test(test_examples_from_the_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
