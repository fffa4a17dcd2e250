/* test_kvm.c - the KVM runtime against real KVM: typed calls, state, host
 * functions, logging, aborts, CPU exceptions, deadlines and hostile pointers.
 * usage: test_kvm GUEST_DIR SNAPBOX_CLI (tests/run-kvm.sh runs it natively or
 * inside the KVM VM). */
#include <sys/wait.h>

#include "snapshot/snapshot.h"
#include "testutil.h"

static char guest_dir[512], cli_path[512];

struct fixture {
    struct sbx_guest *guest;
    struct sbx_sandbox *sbx;
    struct tu_log log;
    int host_calls;
};

static int host_add(void *ctx, const struct sbx_value *args, size_t nargs, struct sbx_value *ret)
{
    struct fixture *f = ctx;
    assert_int_equal(nargs, 2);
    f->host_calls++;
    if (args[0].u.i64 < 0)
        return -42; /* a failing host function: the guest sees the status */
    ret->u.i64 = args[0].u.i64 + args[1].u.i64;
    return 0;
}

static int host_greet(void *ctx, const struct sbx_value *args, size_t nargs, struct sbx_value *ret)
{
    static char buf[128];
    (void)ctx; (void)nargs;
    int n = snprintf(buf, sizeof buf, "hi %.*s", (int)args[0].u.buf.len, (const char *)args[0].u.buf.ptr);
    ret->u.buf.ptr = buf;
    ret->u.buf.len = (size_t)n;
    return 0;
}

/* host_add and host_greet, as the demo guest calls them; the caller frees
 * the set as soon as its sandboxes exist (they hold their own reference). */
static struct sbx_host_fns *demo_host_fns(struct fixture *f)
{
    static const enum sbx_type add_args[] = { SBX_T_I64, SBX_T_I64 }, greet_args[] = { SBX_T_STR };
    struct sbx_host_fns *h = NULL;
    struct sbx_diag d = { 0 };
    if (sbx_host_fns_new(&h, &d) ||
        sbx_host_fns_add(h, "host_add", SBX_T_I64, 2, add_args, host_add, f, &d) ||
        sbx_host_fns_add(h, "host_greet", SBX_T_STR, 1, greet_args, host_greet, NULL, &d))
        fail_msg("host functions: %s", d.msg);
    return h;
}

static void open_guest(struct fixture *f, const char *name, uint32_t deadline_ms, bool with_host_fns)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", guest_dir, name);
    struct sbx_diag diag = { 0 };
    SBX_OPTS(sbx_load_opts, opts, .log = tu_log_cb, .log_ctx = &f->log);
    if (sbx_guest_load(path, &opts, &f->guest, &diag))
        fail_msg("load %s: %s", path, diag.msg);
    struct sbx_host_fns *fns = with_host_fns ? demo_host_fns(f) : NULL;
    SBX_OPTS(sbx_config, cfg, .deadline_ms = deadline_ms, .log = tu_log_cb, .log_ctx = &f->log,
             .host_fns = fns);
    int rc = sbx_sandbox_create(f->guest, &cfg, &f->sbx, &diag);
    sbx_host_fns_free(fns);
    if (rc)
        fail_msg("create %s: %s", path, diag.msg);
}

static int setup_demo(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    open_guest(f, "demo.elf", 2000, true);
    *state = f;
    return 0;
}

static int setup_hostile(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    open_guest(f, "hostile.elf", 500, false);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    sbx_sandbox_destroy(f->sbx);
    sbx_guest_free(f->guest);
    free(f);
    return 0;
}

static struct sbx_value v_i32(int32_t v) { return (struct sbx_value){ .type = SBX_T_I32, .u.i32 = v }; }
static struct sbx_value v_i64(int64_t v) { return (struct sbx_value){ .type = SBX_T_I64, .u.i64 = v }; }
static struct sbx_value v_u64(uint64_t v) { return (struct sbx_value){ .type = SBX_T_U64, .u.u64 = v }; }
static struct sbx_value v_f64(double v) { return (struct sbx_value){ .type = SBX_T_F64, .u.f64 = v }; }
static struct sbx_value v_bool(bool v) { return (struct sbx_value){ .type = SBX_T_BOOL, .u.b = v }; }
static struct sbx_value v_buf(enum sbx_type t, const void *p, size_t n)
{
    return (struct sbx_value){ .type = t, .u.buf = { p, n } };
}

/* Call and expect success. */
static struct sbx_value call_ok(struct fixture *f, const char *fn, const struct sbx_value *args, size_t n)
{
    struct sbx_diag diag = { 0 };
    struct sbx_value ret;
    if (sbx_sandbox_call(f->sbx, fn, args, n, &ret, &diag))
        fail_msg("%s: %s", fn, diag.msg);
    return ret;
}

/* Call and expect the error code; returns the diag for more checks. */
static struct sbx_diag call_err(struct fixture *f, const char *fn, const struct sbx_value *args,
                                size_t n, int code)
{
    struct sbx_diag diag = { 0 };
    struct sbx_value ret;
    int rc = sbx_sandbox_call(f->sbx, fn, args, n, &ret, &diag);
    if (rc != code)
        fail_msg("%s: expected error %d, got %d: %s", fn, code, rc, diag.msg);
    return diag;
}

static void test_arithmetic(void **state)
{
    struct fixture *f = *state;
    struct sbx_value a[2] = { v_i32(2), v_i32(3) };
    struct sbx_value r = call_ok(f, "add", a, 2);
    assert_int_equal(r.type, SBX_T_I32);
    assert_int_equal(r.u.i32, 5);
    a[0] = v_i32(INT32_MAX), a[1] = v_i32(1);
    assert_int_equal(call_ok(f, "add", a, 2).u.i32, INT32_MIN);
    a[0] = v_i64(-5000000000ll), a[1] = v_i64(7);
    assert_int_equal(call_ok(f, "add_i64", a, 2).u.i64, -4999999993ll);
    a[0] = v_u64(1ull << 40), a[1] = v_u64(1000);
    assert_int_equal(call_ok(f, "mul_u64", a, 2).u.u64, (1ull << 40) * 1000);
    a[0] = v_f64(1.5), a[1] = v_f64(-2.25);
    r = call_ok(f, "fmul", a, 2);
    assert_int_equal(r.type, SBX_T_F64);
    assert_true(r.u.f64 == -3.375);
    a[0] = v_bool(true);
    r = call_ok(f, "negate", a, 1);
    assert_int_equal(r.type, SBX_T_BOOL);
    assert_false(r.u.b);
}

static void test_strings_and_bytes(void **state)
{
    struct fixture *f = *state;
    struct sbx_value a = v_buf(SBX_T_STR, "Hello, guest", 12);
    struct sbx_value r = call_ok(f, "echo", &a, 1);
    assert_int_equal(r.type, SBX_T_STR);
    assert_int_equal(r.u.buf.len, 12);
    assert_memory_equal(r.u.buf.ptr, "Hello, guest", 12);
    r = call_ok(f, "upper", &a, 1);
    assert_memory_equal(r.u.buf.ptr, "HELLO, GUEST", 12);
    a = v_buf(SBX_T_STR, "", 0);
    assert_int_equal(call_ok(f, "echo", &a, 1).u.buf.len, 0);

    static uint8_t big[60000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7 + 1);
    a = v_buf(SBX_T_BYTES, big, sizeof big);
    r = call_ok(f, "reverse", &a, 1);
    assert_int_equal(r.type, SBX_T_BYTES);
    assert_int_equal(r.u.buf.len, sizeof big);
    for (size_t i = 0; i < sizeof big; i++)
        if (((const uint8_t *)r.u.buf.ptr)[i] != big[sizeof big - 1 - i])
            fail_msg("reverse differs at %zu", i);
}

static void test_state_kept_across_calls(void **state)
{
    struct fixture *f = *state;
    for (uint64_t i = 1; i <= 5; i++)
        assert_int_equal(call_ok(f, "counter", NULL, 0).u.u64, i);
    struct sbx_value pages = v_u64(3);
    assert_int_equal(call_ok(f, "touch", &pages, 1).u.u64, 3);
    assert_int_equal(call_ok(f, "touch", &pages, 1).u.u64, 6);
}

static void test_host_functions(void **state)
{
    struct fixture *f = *state;
    struct sbx_value a[2] = { v_i64(40), v_i64(2) };
    assert_int_equal(call_ok(f, "call_host", a, 2).u.i64, 42);
    assert_int_equal(f->host_calls, 1);
    a[0] = v_i64(-1); /* host_add fails for negative input; the guest returns the status */
    assert_int_equal(call_ok(f, "call_host", a, 2).u.i64, -42);
    struct sbx_value name = v_buf(SBX_T_STR, "ada", 3);
    struct sbx_value r = call_ok(f, "greet", &name, 1);
    assert_int_equal(r.u.buf.len, 6);
    assert_memory_equal(r.u.buf.ptr, "hi ada", 6);
}

static void test_unknown_host_function(void **state)
{
    (void)state;
    struct fixture f = { 0 };
    open_guest(&f, "demo.elf", 2000, false); /* no host functions registered */
    struct sbx_value a[2] = { v_i64(1), v_i64(2) };
    assert_int_equal(call_ok(&f, "call_host", a, 2).u.i64, SBX_E_NO_FUNC);
    tu_assert_contains(f.log.last, "unknown host function 'host_add'");
    sbx_sandbox_destroy(f.sbx);
    sbx_guest_free(f.guest);
}

static void test_logging(void **state)
{
    struct fixture *f = *state;
    tu_assert_contains(f->log.all, "demo guest initialised");
    struct sbx_value a[2] = { v_i32(SBX_LOG_WARN), v_buf(SBX_T_STR, "disk almost full", 16) };
    call_ok(f, "log", a, 2);
    assert_int_equal(f->log.last_level, SBX_LOG_WARN);
    assert_string_equal(f->log.last, "disk almost full");
    a[0] = v_i32(9); /* not a level */
    struct sbx_diag d = call_err(f, "log", a, 2, SBX_E_GUEST_ABI);
    tu_assert_contains(d.msg, "log level 9");
}

static void test_calls_rejected_before_running(void **state)
{
    struct fixture *f = *state;
    struct sbx_diag d = call_err(f, "nope", NULL, 0, SBX_E_NO_FUNC);
    tu_assert_contains(d.msg, "'nope'");
    struct sbx_value a[2] = { v_i32(1), v_buf(SBX_T_STR, "x", 1) };
    d = call_err(f, "add", a, 2, SBX_E_ARGS);
    tu_assert_contains(d.msg, "add(i32, i32) -> i32: argument 2 is str, expected i32");
    d = call_err(f, "add", a, 1, SBX_E_ARGS);
    tu_assert_contains(d.msg, "takes 2 arguments, got 1");
    assert_false(sbx_sandbox_poisoned(f->sbx));
    assert_int_equal(call_ok(f, "counter", NULL, 0).u.u64, 1); /* the guest never ran */
}

static void test_function_table(void **state)
{
    struct fixture *f = *state;
    SBX_OPTS(sbx_func_info, fi);
    assert_int_equal(sbx_sandbox_find_function(f->sbx, "fmul", &fi, NULL), 0);
    assert_int_equal(fi.ret, SBX_T_F64);
    assert_int_equal(fi.nargs, 2);
    assert_int_equal(fi.args[1], SBX_T_F64);
    assert_true(sbx_sandbox_function_count(f->sbx) >= 13);
}

static void expect_poisoned(struct fixture *f)
{
    assert_true(sbx_sandbox_poisoned(f->sbx));
    struct sbx_diag d = call_err(f, "null_read", NULL, 0, SBX_E_POISONED);
    tu_assert_contains(d.msg, "poisoned");
}

static void test_abort(void **state)
{
    struct fixture *f = *state;
    struct sbx_value code = v_i32(7);
    struct sbx_diag d = call_err(f, "abort", &code, 1, SBX_E_GUEST_ABORT);
    assert_int_equal(d.abort_code, 7);
    tu_assert_contains(d.msg, "hostile guest gave up");
    expect_poisoned(f);
}

static void check_fault(void **state, const char *fn, const struct sbx_value *args, size_t n,
                        uint32_t vector, const char *name)
{
    struct fixture *f = *state;
    struct sbx_diag d = call_err(f, fn, args, n, SBX_E_GUEST_FAULT);
    assert_int_equal(d.fault.vector, vector);
    tu_assert_contains(d.msg, name);
    assert_in_range(d.fault.rip, SBX_LAYOUT_IMAGE, SBX_LAYOUT_IMAGE_END - 1);
    char rip[32];
    snprintf(rip, sizeof rip, "rip 0x%llx", (unsigned long long)d.fault.rip);
    tu_assert_contains(d.msg, rip);
    expect_poisoned(f);
}

static void test_fault_page_fault_null(void **state)
{
    check_fault(state, "null_read", NULL, 0, 14, "#PF page fault");
}

static void test_fault_details(void **state)
{
    struct fixture *f = *state;
    struct sbx_diag d = call_err(f, "null_read", NULL, 0, SBX_E_GUEST_FAULT);
    assert_int_equal(d.fault.addr, 0x10);
    tu_assert_contains(d.msg, "address 0x10");
}

static void test_fault_write_to_code(void **state)
{
    struct fixture *f = *state;
    struct sbx_diag d = call_err(f, "write_code", NULL, 0, SBX_E_GUEST_FAULT);
    assert_int_equal(d.fault.vector, 14);
    assert_in_range(d.fault.addr, SBX_LAYOUT_IMAGE, SBX_LAYOUT_IMAGE_END - 1);
    assert_true(d.fault.error_code & 2); /* a write */
}

static void test_fault_invalid_opcode(void **state) { check_fault(state, "undefined_op", NULL, 0, 6, "#UD"); }
static void test_fault_general_protection(void **state) { check_fault(state, "noncanonical", NULL, 0, 13, "#GP"); }

static void test_fault_divide(void **state)
{
    struct sbx_value a = v_i32(5);
    check_fault(state, "divide", &a, 1, 0, "#DE divide error");
}

static void test_fault_stack_overflow(void **state)
{
    struct fixture *f = *state;
    struct sbx_diag d = call_err(f, "stack_overflow", NULL, 0, SBX_E_GUEST_FAULT);
    assert_int_equal(d.fault.vector, 14);
    assert_in_range(d.fault.addr, SBX_LAYOUT_STACK_GUARD, SBX_LAYOUT_STACK_GUARD + SBX_PAGE_SIZE - 1);
    tu_assert_contains(d.msg, "guest stack overflow");
}

static void test_timeout(void **state)
{
    struct fixture *f = *state;
    struct sbx_diag d = call_err(f, "spin", NULL, 0, SBX_E_TIMEOUT);
    tu_assert_contains(d.msg, "deadline of 500 ms");
    expect_poisoned(f);
}

static void test_wild_pointers(void **state)
{
    (void)state;
    struct {
        const char *fn;
        uint64_t a, b;
        const char *msg;
    } cases[] = {
        { "wild_log", 0xffffffffffull, 10, "log message at 0xffffffffff" },
        { "wild_log", SBX_LAYOUT_IMAGE, UINT64_MAX, "length 18446744073709551615" },
        { "wild_log", UINT64_MAX, 2, "outside" },
        { "wild_ret", 0xfffffff000ull, 4, "result of 'wild_ret' at 0xfffffff000" },
        { "wild_ret", SBX_LAYOUT_IMAGE, 1ull << 62, "outside its memory" },
        { "wild_host_call", 0x123456789ull, 5, "host function name at 0x123456789" },
        { "wild_host_call", SBX_LAYOUT_IMAGE, 100000, "name length 100000" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fixture f = { 0 };
        open_guest(&f, "hostile.elf", 1000, false);
        struct sbx_value a[2] = { v_u64(cases[i].a), v_u64(cases[i].b) };
        struct sbx_diag d = call_err(&f, cases[i].fn, a, 2, SBX_E_GUEST_ABI);
        tu_assert_contains(d.msg, cases[i].msg);
        assert_true(sbx_sandbox_poisoned(f.sbx));
        sbx_sandbox_destroy(f.sbx);
        sbx_guest_free(f.guest);
    }
}

static void test_wrong_result_type(void **state)
{
    struct fixture *f = *state;
    struct sbx_diag d = call_err(f, "wrong_type", NULL, 0, SBX_E_GUEST_ABI);
    tu_assert_contains(d.msg, "of type f64, expected i64");
}

static void test_unknown_hypercall(void **state)
{
    struct fixture *f = *state;
    struct sbx_diag d = call_err(f, "unknown_hypercall", NULL, 0, SBX_E_GUEST_ABI);
    tu_assert_contains(d.msg, "unknown hypercall 127");
}

static void test_guest_without_library_runs(void **state)
{
    (void)state;
    struct fixture f = { 0 };
    open_guest(&f, "plain.elf", 1000, false);
    tu_assert_contains(f.log.all, "no snapbox version note");
    assert_int_equal(call_ok(&f, "answer", NULL, 0).u.i64, 42);
    sbx_sandbox_destroy(f.sbx);
    sbx_guest_free(f.guest);
}

static void test_config_limits(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/demo.elf", guest_dir);
    struct sbx_guest *g = NULL;
    struct sbx_diag d = { 0 };
    assert_int_equal(sbx_guest_load(path, NULL, &g, &d), 0);
    struct sbx_sandbox *s = NULL;
    SBX_OPTS(sbx_config, cfg, .mem_size = 3ull << 20);
    assert_int_equal(sbx_sandbox_create(g, &cfg, &s, &d), SBX_E_LIMIT);
    cfg.mem_size = 2ull << 30;
    assert_int_equal(sbx_sandbox_create(g, &cfg, &s, &d), SBX_E_LIMIT);
    tu_assert_contains(d.msg, "multiple of 2 MiB");
    cfg.mem_size = 64ull << 20; /* a larger guest works */
    assert_int_equal(sbx_sandbox_create(g, &cfg, &s, &d), 0);
    struct sbx_value pages = v_u64(200);
    assert_int_equal(sbx_sandbox_call(s, "touch", &pages, 1, NULL, &d), 0);
    sbx_sandbox_destroy(s);
    sbx_guest_free(g);
}

static int host_echo(void *ctx, const struct sbx_value *args, size_t nargs, struct sbx_value *ret)
{
    (void)nargs;
    ++*(int *)ctx;
    *ret = args[0];
    return 0;
}

/* A guest that logs or calls the host in a tight loop stays within bounds:
 * logs past the per-call limit are dropped and counted once, and host results
 * beyond the exchange area are refused, not buffered. */
static void test_flooding_guest_is_bounded(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/hostile.elf", guest_dir);
    struct sbx_guest *g = NULL;
    struct sbx_diag d = { 0 };
    struct tu_log log = { 0 };
    int echoes = 0;
    static const enum sbx_type echo_args[] = { SBX_T_STR };
    struct sbx_host_fns *fns = NULL;
    assert_int_equal(sbx_host_fns_new(&fns, &d), 0);
    assert_int_equal(sbx_host_fns_add(fns, "host_echo", SBX_T_STR, 1, echo_args, host_echo,
                                      &echoes, &d), 0);
    SBX_OPTS(sbx_config, cfg, .deadline_ms = 20000, .log = tu_log_cb, .log_ctx = &log,
             .max_log_per_call = 50, .host_fns = fns);
    struct sbx_sandbox *s = NULL;
    assert_int_equal(sbx_guest_load(path, NULL, &g, &d), 0);
    assert_int_equal(sbx_sandbox_create(g, &cfg, &s, &d), 0);
    struct sbx_value n = v_u64(2000);
    log.count = 0;
    assert_int_equal(sbx_sandbox_call(s, "log_flood", &n, 1, NULL, &d), 0);
    assert_int_equal(log.count, 51); /* 50 messages and one warning */
    assert_int_equal(log.last_level, SBX_LOG_WARN);
    tu_assert_contains(log.last, "1950 over the limit of 50 were dropped");
    struct sbx_value refused;
    n = v_u64(600);
    assert_int_equal(sbx_sandbox_call(s, "host_flood", &n, 1, &refused, &d), 0);
    assert_int_equal(echoes, 600);
    /* 1 KiB answers: the exchange area holds 255 of them, the rest are refused */
    assert_int_equal(refused.u.u64, 600 - (SBX_XCHG_DATA_SIZE / 1024));
    assert_int_equal(sbx_sandbox_call(s, "host_flood", &n, 1, &refused, &d), 0);
    assert_int_equal(refused.u.u64, 600 - (SBX_XCHG_DATA_SIZE / 1024)); /* each call starts afresh */
    sbx_sandbox_destroy(s);
    sbx_host_fns_free(fns);
    sbx_guest_free(g);
}

static void test_cli_run(void **state)
{
    (void)state;
    char cmd[1400], out[256] = "";
    snprintf(cmd, sizeof cmd, "%s run %s/demo.elf add 2 3 2>/dev/null", cli_path, guest_dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_string_equal(out, "5\n");

    snprintf(cmd, sizeof cmd, "%s run %s/hostile.elf spin --deadline 300 2>/dev/null", cli_path, guest_dir);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 11); /* timeout's exit code */
}

/* ---- snapshots ---- */

static struct sbx_sandbox *restore_file(const char *path, struct fixture *f)
{
    struct sbx_snapshot *snap = NULL;
    struct sbx_sandbox *s = NULL;
    struct sbx_diag d = { 0 };
    if (sbx_snapshot_open(path, NULL, &snap, &d))
        fail_msg("open %s: %s", path, d.msg);
    struct sbx_host_fns *fns = demo_host_fns(f);
    SBX_OPTS(sbx_config, cfg, .log = tu_log_cb, .log_ctx = &f->log, .host_fns = fns);
    int rc = sbx_sandbox_restore(snap, &cfg, &s, &d);
    sbx_host_fns_free(fns);
    if (rc)
        fail_msg("restore %s: %s", path, d.msg);
    sbx_snapshot_free(snap);
    return s;
}

static void take_to(struct sbx_sandbox *s, const char *path, bool hc)
{
    struct sbx_snapshot *snap = NULL;
    struct sbx_diag d = { 0 };
    SBX_OPTS(sbx_snapshot_opts, opts, .hc = hc);
    if (sbx_snapshot_take(s, &opts, &snap, &d) || sbx_snapshot_write(snap, path, &d))
        fail_msg("snapshot to %s: %s", path, d.msg);
    sbx_snapshot_free(snap);
}

/* The same calls on the original and on a restored sandbox give the same results. */
static void same_answers(struct fixture *orig, struct fixture *rest)
{
    struct sbx_value a[2] = { v_i32(20), v_i32(22) };
    assert_int_equal(call_ok(orig, "add", a, 2).u.i32, call_ok(rest, "add", a, 2).u.i32);
    a[0] = v_f64(0.1), a[1] = v_f64(3);
    assert_true(call_ok(orig, "fmul", a, 2).u.f64 == call_ok(rest, "fmul", a, 2).u.f64);
    struct sbx_value str = v_buf(SBX_T_STR, "snap", 4);
    assert_memory_equal(call_ok(rest, "upper", &str, 1).u.buf.ptr, "SNAP", 4);
    a[0] = v_i64(1), a[1] = v_i64(2);
    assert_int_equal(call_ok(rest, "call_host", a, 2).u.i64, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(call_ok(orig, "counter", NULL, 0).u.u64, call_ok(rest, "counter", NULL, 0).u.u64);
}

static void test_snapshot_after_init_round_trip(void **state)
{
    struct fixture *f = *state;
    const char *path = tu_path("init.snap");
    take_to(f->sbx, path, false);
    struct fixture r = { 0 };
    r.sbx = restore_file(path, &r);
    same_answers(f, &r);
    sbx_sandbox_destroy(r.sbx);
}

static void test_snapshot_after_calls_keeps_state(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 5; i++)
        call_ok(f, "counter", NULL, 0);
    struct sbx_value pages = v_u64(4);
    call_ok(f, "touch", &pages, 1);
    const char *path = tu_path("warm.snap");
    take_to(f->sbx, path, true);
    /* two restores from one file: each starts at the frozen counter value */
    for (int round = 0; round < 2; round++) {
        struct fixture r = { 0 };
        r.sbx = restore_file(path, &r);
        assert_int_equal(call_ok(&r, "counter", NULL, 0).u.u64, 6);
        assert_int_equal(call_ok(&r, "touch", &pages, 1).u.u64, 8); /* heap pages held 1 each */
        sbx_sandbox_destroy(r.sbx);
    }
    /* the original goes on from where it was frozen */
    assert_int_equal(call_ok(f, "counter", NULL, 0).u.u64, 6);
}

static void test_restore_needs_no_elf(void **state)
{
    (void)state;
    char src[600], cmd[1400];
    snprintf(src, sizeof src, "%s/demo.elf", guest_dir);
    const char *copy = tu_path("doomed.elf");
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, copy);
    assert_int_equal(system(cmd), 0);
    struct fixture f = { 0 };
    struct sbx_diag d = { 0 };
    assert_int_equal(sbx_guest_load(copy, NULL, &f.guest, &d), 0);
    assert_int_equal(sbx_sandbox_create(f.guest, NULL, &f.sbx, &d), 0);
    call_ok(&f, "counter", NULL, 0);
    const char *path = tu_path("noelf.snap");
    take_to(f.sbx, path, false);
    sbx_sandbox_destroy(f.sbx);
    sbx_guest_free(f.guest);
    assert_int_equal(unlink(copy), 0);
    struct fixture r = { 0 };
    r.sbx = restore_file(path, &r);
    assert_int_equal(call_ok(&r, "counter", NULL, 0).u.u64, 2);
    struct sbx_value a[2] = { v_i32(2), v_i32(3) };
    assert_int_equal(call_ok(&r, "add", a, 2).u.i32, 5);
    sbx_sandbox_destroy(r.sbx);
}

static void test_restore_rejects_missing_cpu_features(void **state)
{
    struct fixture *f = *state;
    const char *path = tu_path("cpu.snap");
    take_to(f->sbx, path, false);
    size_t size;
    uint8_t *buf = tu_read(path, &size);
    struct sbx_snap_header *h = (struct sbx_snap_header *)buf;
    h->cpuid_features[2] = 0xffffffffu; /* every leaf-7 feature, more than any CPU has */
    h->header_xxh3 = sbx_snap_header_hash(h);
    tu_write(path, buf, size);
    free(buf);
    struct sbx_snapshot *snap = NULL;
    struct sbx_sandbox *s = NULL;
    struct sbx_diag d = { 0 };
    assert_int_equal(sbx_snapshot_open(path, NULL, &snap, &d), 0);
    assert_int_equal(sbx_sandbox_restore(snap, NULL, &s, &d), SBX_E_CPU);
    tu_assert_contains(d.msg, "CPUID.7:EBX");
    sbx_snapshot_free(snap);
}

static void test_poisoned_sandbox_not_snapshotted(void **state)
{
    struct fixture *f = *state;
    call_err(f, "null_read", NULL, 0, SBX_E_GUEST_FAULT);
    struct sbx_snapshot *snap = NULL;
    struct sbx_diag d = { 0 };
    assert_int_equal(sbx_snapshot_take(f->sbx, NULL, &snap, &d), SBX_E_POISONED);
}

/* Capture reads only the pages the guest ever touched (the kernel's page
 * map): the snapshot's memory must still equal the sandbox's, byte for byte,
 * touched pages far into the heap included. */
static void test_snapshot_holds_every_touched_page(void **state)
{
    struct fixture *f = *state;
    struct sbx_value a[2] = { { .type = SBX_T_U64, .u.u64 = 300 },
                              { .type = SBX_T_U64, .u.u64 = 0x5eed } };
    struct sbx_value r;
    struct sbx_diag d = { 0 };
    if (sbx_sandbox_call(f->sbx, "touch", a, 2, &r, &d))
        fail_msg("touch: %s", d.msg);
    assert_int_equal(r.u.u64, 300);
    struct sbx_snapshot *snap = NULL;
    struct sbx_template *t = NULL;
    if (sbx_snapshot_take(f->sbx, NULL, &snap, &d) || sbx_template_from_snapshot(snap, &t, &d))
        fail_msg("snapshot: %s", d.msg);
    assert_int_equal(t->mem_size, f->sbx->vm.mem_size);
    assert_memory_equal(t->mem, f->sbx->vm.mem, t->mem_size);
    SBX_OPTS(sbx_snapshot_info, info);
    assert_int_equal(sbx_snapshot_info(snap, &info, &d), 0);
    assert_true(info.nonzero_pages >= 300);
    sbx_template_free(t);
    sbx_snapshot_free(snap);
}

/* The guest build/guests/NAME, loaded under the default policy. */
static struct sbx_guest *load_guest(const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", guest_dir, name);
    struct sbx_guest *g = NULL;
    struct sbx_diag d = { 0 };
    if (sbx_guest_load(path, NULL, &g, &d))
        fail_msg("%s: %s", path, d.msg);
    return g;
}

/* A sandbox of the big guest (an image past 21 MiB) in mem_size bytes, or
 * the creation's error in *rc. */
static struct sbx_sandbox *big_sandbox(uint64_t mem_size, int *rc, struct sbx_diag *d)
{
    struct sbx_guest *g = load_guest("big.elf");
    struct sbx_sandbox *s = NULL;
    SBX_OPTS(sbx_config, cfg, .mem_size = mem_size, .deadline_ms = 20000);
    *rc = sbx_sandbox_create(g, &cfg, &s, d);
    sbx_guest_free(g);
    return s;
}

static uint64_t big_call(struct sbx_sandbox *s, const char *fn, uint64_t arg, int want)
{
    struct sbx_value a = { .type = SBX_T_U64, .u.u64 = arg }, r = { 0 };
    struct sbx_diag d = { 0 };
    int rc = sbx_sandbox_call(s, fn, &a, !strcmp(fn, "fill"), &r, &d);
    if (rc != want)
        fail_msg("%s: expected %d, got %d: %s", fn, want, rc, d.msg);
    return want ? d.fault.addr : r.u.u64;
}

/* An image far larger than the first 2 MiB: loaded, its pages protected one
 * by one (read-only data stays read-only 17 MiB in, data is no-execute), the
 * heap placed past it, and a memory too small for it refused by name. */
static void test_image_of_21_mib(void **state)
{
    (void)state;
    struct sbx_diag d = { 0 };
    int rc;
    struct sbx_sandbox *s = big_sandbox(64ull << 20, &rc, &d);
    if (rc)
        fail_msg("create: %s", d.msg);
    assert_int_equal(big_call(s, "sum", 0, 0), 1 + 2 + 41);
    assert_true(big_call(s, "layout", 0, 0) > 21ull << 20);
    /* 1024 pages, (3 + page) % 256 each: four whole turns of 0..255 */
    assert_int_equal(big_call(s, "fill", 3, 0), 4 * (255 * 256 / 2));
    sbx_sandbox_destroy(s);
    s = big_sandbox(64ull << 20, &rc, &d);
    uint64_t addr = big_call(s, "write_table", 0, SBX_E_GUEST_FAULT);
    assert_in_range(addr, 16ull << 20, 18ull << 20); /* the table, 16 MiB in */
    sbx_sandbox_destroy(s);
    s = big_sandbox(64ull << 20, &rc, &d);
    addr = big_call(s, "exec_data", 0, SBX_E_GUEST_FAULT);
    assert_in_range(addr, 17ull << 20, 22ull << 20);
    sbx_sandbox_destroy(s);
    assert_null(big_sandbox(16ull << 20, &rc, &d));
    assert_int_equal(rc, SBX_E_LIMIT);
    tu_assert_contains(d.msg, "the guest image is too large for 16 MiB of guest memory");
}

/* The stack a sandbox is given: 4000 frames of 512+ bytes overflow the
 * default 700 KiB by name, and fit in 4 MiB placed above the image; the big
 * stack survives a snapshot and a restore, and a stack too large for the
 * memory is refused. */
static void test_stack_size(void **state)
{
    (void)state;
    struct sbx_guest *g = load_guest("hostile.elf");
    struct sbx_sandbox *s = NULL;
    struct sbx_diag d = { 0 };
    struct sbx_value depth = { .type = SBX_T_U64, .u.u64 = 4000 }, r;
    SBX_OPTS(sbx_config, small, .deadline_ms = 20000);
    if (sbx_sandbox_create(g, &small, &s, &d))
        fail_msg("create: %s", d.msg);
    assert_int_equal(sbx_sandbox_call(s, "deep", &depth, 1, &r, &d), SBX_E_GUEST_FAULT);
    tu_assert_contains(d.msg, "guest stack overflow");
    sbx_sandbox_destroy(s);
    SBX_OPTS(sbx_config, big, .deadline_ms = 20000, .mem_size = 16ull << 20,
             .stack_size = 4ull << 20);
    if (sbx_sandbox_create(g, &big, &s, &d))
        fail_msg("create with a 4 MiB stack: %s", d.msg);
    if (sbx_sandbox_call(s, "deep", &depth, 1, &r, &d))
        fail_msg("deep(4000) on 4 MiB: %s", d.msg);
    struct sbx_snapshot *snap = NULL;
    struct sbx_sandbox *back = NULL;
    if (sbx_snapshot_take(s, NULL, &snap, &d) || sbx_sandbox_restore(snap, &small, &back, &d))
        fail_msg("snapshot and restore: %s", d.msg);
    if (sbx_sandbox_call(back, "deep", &depth, 1, &r, &d))
        fail_msg("deep(4000) after restore: %s", d.msg);
    depth.u.u64 = 100000; /* ~50 MiB: past the 4 MiB stack's own guard page */
    assert_int_equal(sbx_sandbox_call(back, "deep", &depth, 1, &r, &d), SBX_E_GUEST_FAULT);
    tu_assert_contains(d.msg, "guest stack overflow");
    sbx_sandbox_destroy(back);
    sbx_snapshot_free(snap);
    sbx_sandbox_destroy(s);
    SBX_OPTS(sbx_config, huge, .mem_size = 8ull << 20, .stack_size = 8ull << 20);
    assert_int_equal(sbx_sandbox_create(g, &huge, &s, &d), SBX_E_LIMIT);
    tu_assert_contains(d.msg, "too large for 8 MiB of guest memory");
    sbx_guest_free(g);
}

/* A 2 MiB argument: refused by the default 256 KiB exchange area, carried by
 * a 4 MiB one placed above the image, which a snapshot keeps for its
 * restores, templates and resets. */
static void test_xchg_size(void **state)
{
    (void)state;
    struct sbx_guest *g = load_guest("demo.elf");
    struct sbx_sandbox *s = NULL, *back = NULL, *fromt = NULL;
    struct sbx_diag d = { 0 };
    size_t n = 2u << 20;
    char *text = malloc(n);
    assert_non_null(text);
    for (size_t i = 0; i < n; i++)
        text[i] = (char)('a' + i % 26);
    struct sbx_value arg = { .type = SBX_T_STR, .u.buf = { text, n } }, r;
    SBX_OPTS(sbx_config, small, .deadline_ms = 20000);
    if (sbx_sandbox_create(g, &small, &s, &d))
        fail_msg("create: %s", d.msg);
    assert_int_equal(sbx_sandbox_call(s, "echo", &arg, 1, &r, &d), SBX_E_LIMIT);
    tu_assert_contains(d.msg, "xchg_size");
    sbx_sandbox_destroy(s);
    SBX_OPTS(sbx_config, big, .deadline_ms = 20000, .mem_size = 16ull << 20,
             .xchg_size = 4ull << 20);
    if (sbx_sandbox_create(g, &big, &s, &d) || sbx_sandbox_call(s, "echo", &arg, 1, &r, &d))
        fail_msg("echo 2 MiB through 4 MiB: %s", d.msg);
    assert_int_equal(r.u.buf.len, n);
    assert_memory_equal(r.u.buf.ptr, text, n);
    struct sbx_snapshot *snap = NULL;
    struct sbx_template *t = NULL;
    if (sbx_snapshot_take(s, NULL, &snap, &d) || sbx_sandbox_restore(snap, &small, &back, &d) ||
        sbx_template_from_snapshot(snap, &t, &d) ||
        sbx_sandbox_from_template(t, &small, NULL, &fromt, &d))
        fail_msg("snapshot and restores: %s", d.msg);
    for (int round = 0; round < 2; round++) {
        if (sbx_sandbox_call(back, "echo", &arg, 1, &r, &d) || r.u.buf.len != n ||
            sbx_sandbox_call(fromt, "echo", &arg, 1, &r, &d) || r.u.buf.len != n)
            fail_msg("echo 2 MiB after restore, round %d: %s", round, d.msg);
        assert_memory_equal(r.u.buf.ptr, text, n);
        if (sbx_sandbox_reset(fromt, &d))
            fail_msg("reset: %s", d.msg);
    }
    sbx_sandbox_destroy(fromt);
    sbx_template_free(t);
    sbx_sandbox_destroy(back);
    sbx_snapshot_free(snap);
    sbx_sandbox_destroy(s);
    free(text);
    sbx_guest_free(g);
}

static void test_cli_create_info_call(void **state)
{
    (void)state;
    const char *path = tu_path("cli.snap");
    char cmd[4096], out[256] = "";
    snprintf(cmd, sizeof cmd, "%s create %s/demo.elf -o '%s' >/dev/null 2>&1 && %s info '%s' "
             ">/dev/null && %s call '%s' add 2 3 2>/dev/null",
             cli_path, guest_dir, path, cli_path, path, cli_path, path);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_string_equal(out, "5\n");
    /* served from a template with a reset after each request: the counter
     * starts from the snapshot every time */
    snprintf(cmd, sizeof cmd, "%s call '%s' counter --requests 3 2>/dev/null", cli_path, path);
    p = popen(cmd, "r");
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_string_equal(out, "1\n1\n1\n");
    /* JSON result, a negative argument after `--`, a str argument from stdin */
    snprintf(cmd, sizeof cmd, "%s call --json '%s' add -- -2 3 && printf abc | %s call '%s' "
             "upper @- --policy relaxed 2>/dev/null", cli_path, path, cli_path, path);
    p = popen(cmd, "r");
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_string_equal(out, "{\"function\": \"add\", \"type\": \"i32\", \"result\": 1}\nABC\n");
}

/* Run cmd; its stdout and stderr in out, its exit status returned. */
static int run_cmd(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A real snapshot as a build whose VERSION differs in patch would write it:
 * the writer and the guest (its note) one patch level ahead. */
static void test_cli_snapshot_of_another_patch_release(void **state)
{
    (void)state;
    const char *path = tu_path("patch.snap");
    char cmd[4096], out[4096];
    snprintf(cmd, sizeof cmd, "%s create %s/demo.elf -o '%s' 2>&1", cli_path, guest_dir, path);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    size_t size;
    uint8_t *buf = tu_read(path, &size);
    struct sbx_snap_header h;
    memcpy(&h, buf, sizeof h);
    struct sbx_version host;
    sbx_host_version(&host);
    char other[32];
    snprintf(other, sizeof other, "%u.%u.%u", host.major, host.minor, host.patch + 1);
    h.writer.patch = h.guest.patch = host.patch + 1;
    memset(h.writer.string, 0, sizeof h.writer.string);
    memset(h.guest.string, 0, sizeof h.guest.string);
    memcpy(h.writer.string, other, strlen(other));
    memcpy(h.guest.string, other, strlen(other));
    h.header_xxh3 = sbx_snap_header_hash(&h);
    memcpy(buf, &h, sizeof h);
    tu_write(path, buf, size);
    free(buf);
    /* described: exit 0, both versions, a verdict */
    snprintf(cmd, sizeof cmd, "%s info '%s' 2>&1", cli_path, path);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    tu_assert_contains(out, other);
    tu_assert_contains(out, host.string);
    tu_assert_contains(out, "verdict:      rejected under policy exact");
    /* refused by call under exact: exit 5, both versions, "recreate" */
    snprintf(cmd, sizeof cmd, "%s call '%s' add 2 3 2>&1", cli_path, path);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 5);
    tu_assert_contains(out, other);
    tu_assert_contains(out, host.string);
    tu_assert_contains(out, "recreate the snapshot");
    /* accepted under the ABI policy, and it answers */
    snprintf(cmd, sizeof cmd, "%s call --policy abi '%s' add 2 3 2>&1", cli_path, path);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    assert_string_equal(out, "5\n");
}

static void test_cli_stack(void **state)
{
    (void)state;
    char cmd[2048], out[2048];
    snprintf(cmd, sizeof cmd, "%s run %s/hostile.elf deep 4000 2>&1", cli_path, guest_dir);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 10);
    tu_assert_contains(out, "guest stack overflow");
    snprintf(cmd, sizeof cmd, "%s run %s/hostile.elf deep 4000 --stack 4M --mem 16M 2>/dev/null",
             cli_path, guest_dir);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
}

int main(int argc, char **argv)
{
    snprintf(guest_dir, sizeof guest_dir, "%s", argc > 1 ? argv[1] : "build/guests");
    snprintf(cli_path, sizeof cli_path, "%s", argc > 2 ? argv[2] : "build/snapbox");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_arithmetic, setup_demo, teardown),
        cmocka_unit_test_setup_teardown(test_strings_and_bytes, setup_demo, teardown),
        cmocka_unit_test_setup_teardown(test_state_kept_across_calls, setup_demo, teardown),
        cmocka_unit_test_setup_teardown(test_host_functions, setup_demo, teardown),
        cmocka_unit_test(test_unknown_host_function),
        cmocka_unit_test_setup_teardown(test_logging, setup_demo, teardown),
        cmocka_unit_test_setup_teardown(test_calls_rejected_before_running, setup_demo, teardown),
        cmocka_unit_test_setup_teardown(test_function_table, setup_demo, teardown),
        cmocka_unit_test_setup_teardown(test_abort, setup_hostile, teardown),
        cmocka_unit_test_setup_teardown(test_fault_page_fault_null, setup_hostile, teardown),
        cmocka_unit_test_setup_teardown(test_fault_details, setup_hostile, teardown),
        cmocka_unit_test_setup_teardown(test_fault_write_to_code, setup_hostile, teardown),
        cmocka_unit_test_setup_teardown(test_fault_invalid_opcode, setup_hostile, teardown),
        cmocka_unit_test_setup_teardown(test_fault_general_protection, setup_hostile, teardown),
        cmocka_unit_test_setup_teardown(test_fault_divide, setup_hostile, teardown),
        cmocka_unit_test_setup_teardown(test_fault_stack_overflow, setup_hostile, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup_hostile, teardown),
        cmocka_unit_test(test_wild_pointers),
        cmocka_unit_test_setup_teardown(test_wrong_result_type, setup_hostile, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_hypercall, setup_hostile, teardown),
        cmocka_unit_test(test_guest_without_library_runs),
        cmocka_unit_test(test_config_limits),
        cmocka_unit_test(test_flooding_guest_is_bounded),
        cmocka_unit_test(test_cli_run),
        cmocka_unit_test_setup_teardown(test_snapshot_after_init_round_trip, setup_demo, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_after_calls_keeps_state, setup_demo, teardown),
        cmocka_unit_test(test_restore_needs_no_elf),
        cmocka_unit_test_setup_teardown(test_restore_rejects_missing_cpu_features, setup_demo, teardown),
        cmocka_unit_test_setup_teardown(test_poisoned_sandbox_not_snapshotted, setup_hostile, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_holds_every_touched_page, setup_hostile,
                                        teardown),
        cmocka_unit_test(test_image_of_21_mib),
        cmocka_unit_test(test_stack_size),
        cmocka_unit_test(test_xchg_size),
        cmocka_unit_test(test_cli_create_info_call),
        cmocka_unit_test(test_cli_snapshot_of_another_patch_release),
        cmocka_unit_test(test_cli_stack),
    };
    return cmocka_run_group_tests_name("kvm", tests, NULL, NULL);
}
