/* hostile.c - a guest that misbehaves on request: CPU exceptions, an endless
 * loop, aborts, and pointers or lengths outside guest memory. */
#include "sbx_guest.h"

static volatile int64_t zero;
/* Addresses kept in volatile variables so the compiler cannot see them. */
static volatile uintptr_t null_addr = 0x10;
static volatile uintptr_t noncanonical_addr = 0x8000000000000000ull;
static volatile uint64_t depth_limit = ~0ull;

static void do_abort(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)r;
    sbx_abort((int32_t)sbx_arg_i64(a, 0), "hostile guest gave up");
}

static void null_read(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a;
    sbx_ret_i64(r, *(volatile int64_t *)null_addr);
}

static void write_code(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a; (void)r;
    *(volatile uint8_t *)(uintptr_t)&write_code = 0xcc;
}

static void undefined_op(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a; (void)r;
    __asm__ volatile("ud2");
}

static void noncanonical(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a;
    sbx_ret_i64(r, *(volatile int64_t *)noncanonical_addr);
}

static void divide(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    sbx_ret_i64(r, (int32_t)(sbx_arg_i64(a, 0) / zero));
}

static void spin(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a; (void)r;
    for (;;)
        __asm__ volatile("" ::: "memory");
}

static uint64_t recurse(uint64_t n)
{
    volatile uint8_t pad[512];
    pad[0] = (uint8_t)n;
    if (n == depth_limit)
        return 0;
    return recurse(n + 1) + pad[0];
}

static void stack_overflow(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a;
    sbx_ret_u64(r, recurse(0));
}

static void raw_hypercall(uint8_t op, uint64_t a0, uint64_t a1, uint64_t a2)
{
    SBX_XCHG->hc_a[0] = a0;
    SBX_XCHG->hc_a[1] = a1;
    SBX_XCHG->hc_a[2] = a2;
    __asm__ volatile("outb %0, %1" : : "a"(op), "i"(SBX_PORT_HYPERCALL) : "memory");
}

/* log(level, gpa, len) with a pointer and length chosen by the caller. */
static void wild_log(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)r;
    raw_hypercall(SBX_HC_LOG, SBX_LOG_INFO, sbx_arg_u64(a, 0), sbx_arg_u64(a, 1));
}

/* Returns a string whose (gpa, len) the caller chooses. */
static void wild_ret(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    r->u.buf.gpa = sbx_arg_u64(a, 0);
    r->u.buf.len = sbx_arg_u64(a, 1);
}

/* Calls a host function whose name is at a caller-chosen (gpa, len). */
static void wild_host_call(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    SBX_XCHG->nargs = 0;
    raw_hypercall(SBX_HC_HOST_CALL, sbx_arg_u64(a, 0), sbx_arg_u64(a, 1), 0);
    sbx_ret_i64(r, SBX_XCHG->host_status);
}

/* Returns a value of the wrong type for its signature. */
static void wrong_type(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a;
    r->type = SBX_T_F64;
    r->u.f64 = 1.5;
}

static void unknown_hypercall(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a; (void)r;
    raw_hypercall(0x7f, 0, 0, 0);
}

static void log_flood(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)r;
    for (uint64_t i = 0; i < sbx_arg_u64(a, 0); i++)
        sbx_log(SBX_LOG_DEBUG, "flood");
}

/* Calls host_echo with 1 KiB n times in one call: the host's answers fill the
 * bounded exchange area, then are refused; returns how many were refused. */
static void host_flood(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    static char big[1024];
    struct sbx_abi_value arg = { .type = SBX_T_STR,
                                 .u.buf = { (uint64_t)(uintptr_t)big, sizeof big } };
    uint64_t refused = 0;
    for (uint64_t i = 0; i < sbx_arg_u64(a, 0); i++) {
        struct sbx_abi_value ret;
        if (sbx_host_call("host_echo", &ret, 1, &arg) < 0)
            refused++;
    }
    sbx_ret_u64(r, refused);
}

void sbx_guest_init(void)
{
    sbx_register("abort", SBX_T_VOID, do_abort, 1, SBX_T_I32);
    sbx_register("null_read", SBX_T_I64, null_read, 0);
    sbx_register("write_code", SBX_T_VOID, write_code, 0);
    sbx_register("undefined_op", SBX_T_VOID, undefined_op, 0);
    sbx_register("noncanonical", SBX_T_I64, noncanonical, 0);
    sbx_register("divide", SBX_T_I32, divide, 1, SBX_T_I32);
    sbx_register("spin", SBX_T_VOID, spin, 0);
    sbx_register("stack_overflow", SBX_T_U64, stack_overflow, 0);
    sbx_register("wild_log", SBX_T_VOID, wild_log, 2, SBX_T_U64, SBX_T_U64);
    sbx_register("wild_ret", SBX_T_STR, wild_ret, 2, SBX_T_U64, SBX_T_U64);
    sbx_register("wild_host_call", SBX_T_I64, wild_host_call, 2, SBX_T_U64, SBX_T_U64);
    sbx_register("wrong_type", SBX_T_I64, wrong_type, 0);
    sbx_register("unknown_hypercall", SBX_T_VOID, unknown_hypercall, 0);
    sbx_register("log_flood", SBX_T_VOID, log_flood, 1, SBX_T_U64);
    sbx_register("host_flood", SBX_T_U64, host_flood, 1, SBX_T_U64);
}
