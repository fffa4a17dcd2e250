/* test_api.c - the public API's growth rules, without KVM: sized structs from
 * older and newer callers, the one copy helper's messages, host function
 * sets, and the API <-> wire type mapping. */
#include <stddef.h>

#include "fuzz/snapfix.h"
#include "testutil.h"

#define MEM (4ull << 20)

static char demo_path[512], plain_path[512];

static int log_calls;
static void count_log(void *ctx, enum sbx_log_level level, const char *msg)
{
    (void)ctx, (void)level, (void)msg;
    log_calls++;
}

/* A made-up 4 MiB machine with two functions, encoded without KVM. */
static struct sbx_snapshot *make_snapshot(void)
{
    uint8_t *mem = calloc(1, MEM);
    assert_non_null(mem);
    snprintf((char *)mem + SBX_LAYOUT_IMAGE, 64, "a page of the guest");
    static struct sbx_vcpu_state st;
    snapfix_vcpu_state(&st);
    struct sbx_cpu_facts cpu = { .vendor = "AuthenticAMD" };
    struct sbx_func funcs[2] = {
        { .name = "add", .ret_type = SBX_T_I32, .nargs = 2, .arg_types = { SBX_T_I32, SBX_T_I64 } },
        { .name = "hello", .ret_type = SBX_T_STR },
    };
    struct sbx_snap_input in = { .mem = mem, .mem_size = MEM, .state = &st, .cpu = &cpu,
                                 .funcs = funcs, .nfuncs = 2 };
    sbx_host_version(&in.guest_version);
    struct sbx_snapshot *snap = calloc(1, sizeof *snap);
    assert_non_null(snap);
    snap->path = strdup("(memory)");
    struct sbx_diag d = { 0 };
    assert_int_equal(sbx_snap_encode(&in, snap, &d), 0);
    free(mem);
    return snap;
}

/* An older caller's struct is a prefix of today's: the library reads only
 * its sz bytes, so what lies beyond (here: fields set to values that would
 * change the outcome) is never seen. */
static void test_older_caller_input(void **state)
{
    (void)state;
    struct sbx_diag d = { 0 };
    struct sbx_guest *g = NULL;
    struct sbx_load_opts old = { .sz = offsetof(struct sbx_load_opts, require_note),
                                 .require_note = true, .log = count_log };
    log_calls = 0;
    assert_int_equal(sbx_guest_load(plain_path, &old, &g, &d), 0); /* no note, not required */
    assert_int_equal(log_calls, 0);                              /* log is not its field */
    sbx_guest_free(g);
    old.sz = sizeof old; /* the same bytes as today's caller: both fields count */
    assert_int_equal(sbx_guest_load(plain_path, &old, &g, &d), SBX_E_NO_NOTE);
    SBX_OPTS(sbx_load_opts, now, .log = count_log);
    assert_int_equal(sbx_guest_load(plain_path, &now, &g, &d), 0);
    assert_int_equal(log_calls, 1); /* the "no version note" warning */
    sbx_guest_free(g);
}

/* A newer caller (larger struct) is accepted when the fields this library
 * does not know are zero, and refused, with the struct named, when not. */
static void test_newer_caller_input(void **state)
{
    (void)state;
    struct newer {
        struct sbx_load_opts known;
        uint64_t later_field;
    } n = { .known = { .sz = sizeof n, .policy = SBX_VERSION_EXACT } };
    struct sbx_diag d = { 0 };
    struct sbx_guest *g = NULL;
    assert_int_equal(sbx_guest_load(demo_path, &n.known, &g, &d), 0);
    sbx_guest_free(g);
    g = NULL;
    n.later_field = 1;
    assert_int_equal(sbx_guest_load(demo_path, &n.known, &g, &d), SBX_E_INVAL);
    assert_null(g);
    tu_assert_contains(d.msg, "struct sbx_load_opts");
    tu_assert_contains(d.msg, "fields it does not know");

    struct newer_open {
        struct sbx_snapshot_open_opts known;
        uint32_t later_field;
    } o = { .known = { .sz = sizeof o }, .later_field = 7 };
    struct sbx_snapshot *snap = NULL;
    assert_int_equal(sbx_snapshot_open_header("/nonexistent.snap", &o.known, &snap, &d),
                     SBX_E_INVAL); /* refused before the file is looked at */
    tu_assert_contains(d.msg, "struct sbx_snapshot_open_opts");
}

/* sz 0 (a struct declared without SBX_OPTS) is refused with a message that
 * names the struct and the fix, for inputs and outputs alike. */
static void test_zero_sz_refused(void **state)
{
    (void)state;
    struct sbx_diag d = { 0 };
    struct sbx_guest *g = NULL;
    assert_int_equal(sbx_guest_load(demo_path, NULL, &g, &d), 0); /* NULL: the defaults */
    struct sbx_config cfg = { .deadline_ms = 5 };
    struct sbx_sandbox *s = NULL;
    assert_int_equal(sbx_sandbox_create(g, &cfg, &s, &d), SBX_E_INVAL);
    assert_null(s);
    tu_assert_contains(d.msg, "struct sbx_config: sz is 0");
    tu_assert_contains(d.msg, "SBX_OPTS(sbx_config");
    sbx_guest_free(g);
    assert_int_equal(sbx_sandbox_alloc(NULL, 0, &s, &d), 0); /* no VM: no KVM needed */
    struct sbx_snapshot_opts so = { .hc = true };
    struct sbx_snapshot *taken = NULL;
    assert_int_equal(sbx_snapshot_take(s, &so, &taken, &d), SBX_E_INVAL);
    tu_assert_contains(d.msg, "struct sbx_snapshot_opts: sz is 0");
    sbx_sandbox_destroy(s);

    struct sbx_snapshot *snap = make_snapshot();
    struct sbx_snapshot_info info = { .nfuncs = 99 };
    assert_int_equal(sbx_snapshot_info(snap, &info, &d), SBX_E_INVAL);
    tu_assert_contains(d.msg, "struct sbx_snapshot_info: sz is 0");
    assert_int_equal(info.nfuncs, 99); /* nothing written */
    struct sbx_func_info fi = { 0 };
    assert_int_equal(sbx_snapshot_function(snap, 0, &fi, &d), SBX_E_INVAL);
    tu_assert_contains(d.msg, "struct sbx_func_info");
    fi.sz = (size_t)-1; /* garbage: neither read nor written that far */
    assert_int_equal(sbx_snapshot_function(snap, 0, &fi, &d), SBX_E_INVAL);
    struct sbx_load_opts garbage = { .sz = 1u << 20 };
    struct sbx_guest *none = NULL;
    assert_int_equal(sbx_guest_load(demo_path, &garbage, &none, &d), SBX_E_INVAL);
    tu_assert_contains(d.msg, "struct sbx_load_opts: sz is 1048576");
    sbx_snapshot_free(snap);
}

/* Output structs: an older caller gets its prefix and not a byte more; a
 * newer caller's fields unknown here are left as it set them. */
static void test_output_up_to_sz(void **state)
{
    (void)state;
    struct sbx_diag d = { 0 };
    struct sbx_snapshot *snap = make_snapshot();
    struct sbx_snapshot_info info;
    memset(&info, 0xab, sizeof info);
    info.sz = offsetof(struct sbx_snapshot_info, guest);
    assert_int_equal(sbx_snapshot_info(snap, &info, &d), 0);
    assert_int_equal(info.sz, offsetof(struct sbx_snapshot_info, guest)); /* the caller's */
    assert_int_equal(info.format, SBX_SNAP_FORMAT);
    struct sbx_version host;
    sbx_host_version(&host);
    assert_string_equal(info.host.string, host.string);
    const uint8_t *tail = (const uint8_t *)&info + info.sz;
    for (size_t i = 0; i < sizeof info - info.sz; i++)
        assert_int_equal(tail[i], 0xab);

    struct {
        struct sbx_func_info known;
        uint64_t later_field;
    } n = { .known = { .sz = sizeof n }, .later_field = 5 };
    assert_int_equal(sbx_snapshot_function(snap, 0, &n.known, &d), 0);
    assert_int_equal(n.later_field, 5);
    assert_string_equal(n.known.name, "add");
    assert_int_equal(n.known.nargs, 2);
    assert_int_equal(n.known.ret, SBX_T_I32);
    assert_int_equal(n.known.args[1], SBX_T_I64);

    struct sbx_func_info old;
    memset(&old, 0xab, sizeof old);
    old.sz = offsetof(struct sbx_func_info, nargs);
    assert_int_equal(sbx_snapshot_function(snap, 1, &old, &d), 0);
    assert_string_equal(old.name, "hello");
    assert_int_equal(old.nargs, (size_t)0xabababababababab); /* not its field */
    assert_int_equal(sbx_snapshot_function(snap, 2, &old, &d), SBX_E_INVAL);
    tu_assert_contains(d.msg, "no function 2");
    sbx_snapshot_free(snap);
}

static int nop_fn(void *ctx, const struct sbx_value *args, size_t nargs, struct sbx_value *ret)
{
    (void)ctx, (void)args, (void)nargs, (void)ret;
    return 0;
}

/* Host functions pass the one name and signature rule; a set that a
 * sandbox holds is frozen and outlives the caller's reference. */
static void test_host_fns(void **state)
{
    (void)state;
    struct sbx_diag d = { 0 };
    struct sbx_host_fns *h = NULL;
    static const enum sbx_type two[] = { SBX_T_I64, SBX_T_STR }, voidarg[] = { SBX_T_VOID };
    static const enum sbx_type nine[9] = { SBX_T_I32, SBX_T_I32, SBX_T_I32, SBX_T_I32, SBX_T_I32,
                                           SBX_T_I32, SBX_T_I32, SBX_T_I32, SBX_T_I32 };
    assert_int_equal(sbx_host_fns_new(&h, &d), 0);
    assert_int_equal(sbx_host_fns_add(h, "ok_1", SBX_T_VOID, 2, two, nop_fn, NULL, &d), 0);
    assert_int_equal(sbx_host_fns_add(h, "ok_1", SBX_T_I32, 0, NULL, nop_fn, NULL, &d),
                     SBX_E_INVAL);
    tu_assert_contains(d.msg, "registered twice");
    assert_int_equal(sbx_host_fns_add(h, "bad-name", SBX_T_I32, 0, NULL, nop_fn, NULL, &d),
                     SBX_E_INVAL);
    tu_assert_contains(d.msg, "[A-Za-z0-9_]");
    assert_int_equal(sbx_host_fns_add(h, "v", SBX_T_I32, 1, voidarg, nop_fn, NULL, &d), SBX_E_INVAL);
    assert_int_equal(sbx_host_fns_add(h, "n", SBX_T_I32, 9, nine, nop_fn, NULL, &d), SBX_E_INVAL);
    assert_int_equal(sbx_host_fns_add(h, "n", SBX_T_I32, 8, nine, nop_fn, NULL, &d), 0);
    assert_int_equal(sbx_host_fns_add(h, "t", (enum sbx_type)42, 0, NULL, nop_fn, NULL, &d),
                     SBX_E_INVAL);
    assert_int_equal(sbx_host_fns_add(h, "f", SBX_T_I32, 0, NULL, NULL, NULL, &d), SBX_E_INVAL);
    assert_int_equal(sbx_host_fns_count(h), 2);

    SBX_OPTS(sbx_config, cfg, .host_fns = h);
    struct sbx_sandbox *s = NULL;
    assert_int_equal(sbx_sandbox_alloc(&cfg, 0, &s, &d), 0); /* no VM: no KVM needed */
    assert_int_equal(sbx_host_fns_add(h, "late", SBX_T_I32, 0, NULL, nop_fn, NULL, &d),
                     SBX_E_BUSY);
    sbx_host_fns_free(h); /* the sandbox keeps the set alive (ASan would see otherwise) */
    assert_non_null(sbx_host_fns_find(s->host_fns, "ok_1"));
    sbx_sandbox_destroy(s);
}

/* A sandbox's function table, set by its owner module and described up to sz. */
static void test_sandbox_functions(void **state)
{
    (void)state;
    struct sbx_diag d = { 0 };
    struct sbx_sandbox *s = NULL;
    assert_int_equal(sbx_sandbox_alloc(NULL, 0, &s, &d), 0);
    const struct sbx_func f = { .name = "mix", .ret_type = SBX_T_BYTES, .nargs = 1,
                                .arg_types = { SBX_T_F64 } };
    assert_int_equal(sbx_sandbox_set_functions(s, &f, 1, &d), 0);
    SBX_OPTS(sbx_func_info, fi);
    assert_int_equal(sbx_sandbox_find_function(s, "mix", &fi, &d), 0);
    assert_int_equal(fi.ret, SBX_T_BYTES);
    assert_int_equal(fi.args[0], SBX_T_F64);
    assert_int_equal(sbx_sandbox_find_function(s, "nope", &fi, &d), SBX_E_NO_FUNC);
    assert_int_equal(sbx_sandbox_function(s, 1, &fi, &d), SBX_E_INVAL);
    sbx_sandbox_destroy(s);
}

/* Every API type has a wire code and back; codes that are no type are refused. */
static void test_type_mapping(void **state)
{
    (void)state;
    for (int t = SBX_T_VOID; t <= SBX_T_BYTES; t++) {
        enum sbx_type back;
        assert_true(sbx_type_from_abi(sbx_type_to_abi((enum sbx_type)t), true, &back));
        assert_int_equal(back, t);
    }
    enum sbx_type out;
    assert_false(sbx_type_from_abi(SBX_ABI_T_VOID, false, &out)); /* no void argument */
    assert_false(sbx_type_from_abi(SBX_ABI_T_COUNT_, true, &out));
    assert_false(sbx_type_from_abi(255, true, &out));
    enum sbx_log_level level;
    assert_true(sbx_log_level_from_abi(SBX_ABI_LOG_DEBUG, &level));
    assert_int_equal(level, SBX_LOG_DEBUG);
    assert_false(sbx_log_level_from_abi(4, &level));
    const uint8_t codes[2] = { SBX_ABI_T_STR, SBX_ABI_T_U64 };
    struct sbx_func f;
    assert_true(sbx_signature_from_abi(SBX_ABI_T_BOOL, 2, codes, &f));
    assert_int_equal(f.arg_types[0], SBX_T_STR);
    assert_false(sbx_signature_from_abi(SBX_ABI_T_BOOL, SBX_MAX_ARGS + 1, codes, &f));
}

int main(int argc, char **argv)
{
    const char *build = tu_build_dir(argc, argv);
    snprintf(demo_path, sizeof demo_path, "%s/guests/demo.elf", build);
    snprintf(plain_path, sizeof plain_path, "%s/guests/plain.elf", build);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_older_caller_input),
        cmocka_unit_test(test_newer_caller_input),
        cmocka_unit_test(test_zero_sz_refused),
        cmocka_unit_test(test_output_up_to_sz),
        cmocka_unit_test(test_host_fns),
        cmocka_unit_test(test_sandbox_functions),
        cmocka_unit_test(test_type_mapping),
    };
    return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
