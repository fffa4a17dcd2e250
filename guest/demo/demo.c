/* demo.c - the example guest: arithmetic, strings and bytes both ways, state
 * kept across calls, a host function call, logging. */
#include "sbx_guest.h"

static uint64_t count;
static uint8_t buf[64 * 1024];

static void add(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    sbx_ret_i64(r, (int32_t)((uint32_t)sbx_arg_i64(a, 0) + (uint32_t)sbx_arg_i64(a, 1)));
}

static void add_i64(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    sbx_ret_i64(r, (int64_t)((uint64_t)sbx_arg_i64(a, 0) + (uint64_t)sbx_arg_i64(a, 1)));
}

static void mul_u64(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    sbx_ret_u64(r, sbx_arg_u64(a, 0) * sbx_arg_u64(a, 1));
}

static void fmul(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    sbx_ret_f64(r, sbx_arg_f64(a, 0) * sbx_arg_f64(a, 1));
}

static void negate(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    sbx_ret_i64(r, !sbx_arg_i64(a, 0));
}

static void echo(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    sbx_ret_buf(r, sbx_arg_ptr(a, 0), sbx_arg_len(a, 0));
}

static void upper(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    const char *s = sbx_arg_ptr(a, 0);
    size_t n = sbx_arg_len(a, 0);
    if (n > sizeof buf)
        sbx_abort(1, "upper: string too long");
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)((s[i] >= 'a' && s[i] <= 'z') ? s[i] - 32 : s[i]);
    sbx_ret_buf(r, buf, n);
}

static void reverse(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    const uint8_t *p = sbx_arg_ptr(a, 0);
    size_t n = sbx_arg_len(a, 0);
    if (n > sizeof buf)
        sbx_abort(1, "reverse: too many bytes");
    for (size_t i = 0; i < n; i++)
        buf[i] = p[n - 1 - i];
    sbx_ret_buf(r, buf, n);
}

/* What the last upper or reverse left in the buffer: a request's leftovers. */
static void peek(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    uint64_t n = sbx_arg_u64(a, 0);
    sbx_ret_buf(r, buf, n < sizeof buf ? n : sizeof buf);
}

static void counter(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a;
    sbx_ret_u64(r, ++count);
}

static void log_msg(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)r;
    size_t n = sbx_arg_len(a, 1);
    if (n >= sizeof buf)
        n = sizeof buf - 1;
    memcpy(buf, sbx_arg_ptr(a, 1), n);
    buf[n] = 0;
    sbx_log((enum sbx_abi_log_level)sbx_arg_i64(a, 0), (const char *)buf);
}

/* Calls the host function "host_add(i64, i64) -> i64". */
static void call_host(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    struct sbx_abi_value args[2] = {
        { .type = SBX_T_I64, .u.i64 = sbx_arg_i64(a, 0) },
        { .type = SBX_T_I64, .u.i64 = sbx_arg_i64(a, 1) },
    };
    struct sbx_abi_value res;
    int rc = sbx_host_call("host_add", &res, 2, args);
    sbx_ret_i64(r, rc ? rc : res.u.i64);
}

/* Calls the host function "host_greet(str) -> str" and returns its answer. */
static void greet(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    struct sbx_abi_value arg = { .type = SBX_T_STR, .u.buf = a[0].u.buf };
    struct sbx_abi_value res;
    if (sbx_host_call("host_greet", &res, 1, &arg) != 0)
        sbx_abort(2, "greet: host_greet failed");
    size_t n = res.u.buf.len < sizeof buf ? res.u.buf.len : sizeof buf;
    memcpy(buf, (const void *)(uintptr_t)res.u.buf.gpa, n);
    sbx_ret_buf(r, buf, n);
}

/* Writes `pages` heap pages (state that a reset must undo); returns their sum. */
static void touch(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    static uint8_t *heap;
    uint64_t pages = sbx_arg_u64(a, 0);
    if (!heap && !(heap = sbx_alloc(256 * SBX_PAGE_SIZE)))
        sbx_abort(3, "touch: no heap");
    if (pages > 256)
        pages = 256;
    uint64_t sum = 0;
    for (uint64_t p = 0; p < pages; p++) {
        heap[p * SBX_PAGE_SIZE] += 1;
        sum += heap[p * SBX_PAGE_SIZE];
    }
    sbx_ret_u64(r, sum);
}

void sbx_guest_init(void)
{
    sbx_register("add", SBX_T_I32, add, 2, SBX_T_I32, SBX_T_I32);
    sbx_register("add_i64", SBX_T_I64, add_i64, 2, SBX_T_I64, SBX_T_I64);
    sbx_register("mul_u64", SBX_T_U64, mul_u64, 2, SBX_T_U64, SBX_T_U64);
    sbx_register("fmul", SBX_T_F64, fmul, 2, SBX_T_F64, SBX_T_F64);
    sbx_register("negate", SBX_T_BOOL, negate, 1, SBX_T_BOOL);
    sbx_register("echo", SBX_T_STR, echo, 1, SBX_T_STR);
    sbx_register("upper", SBX_T_STR, upper, 1, SBX_T_STR);
    sbx_register("reverse", SBX_T_BYTES, reverse, 1, SBX_T_BYTES);
    sbx_register("counter", SBX_T_U64, counter, 0);
    sbx_register("peek", SBX_T_BYTES, peek, 1, SBX_T_U64);
    sbx_register("log", SBX_T_VOID, log_msg, 2, SBX_T_I32, SBX_T_STR);
    sbx_register("call_host", SBX_T_I64, call_host, 2, SBX_T_I64, SBX_T_I64);
    sbx_register("greet", SBX_T_STR, greet, 1, SBX_T_STR);
    sbx_register("touch", SBX_T_U64, touch, 1, SBX_T_U64);
    sbx_log(SBX_LOG_INFO, "demo guest initialised");
}
