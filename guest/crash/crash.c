/* crash.c - the guest of the debugging tests (tests/test_debug.sh), built
 * with debug information and without optimisation, so that gdb sees every
 * frame, argument and global: a fault three calls deep, a global a call
 * sets, a loop for breakpoints and steps, a loop that never ends (timeouts)
 * and a fault after filling memory (core files of a large guest stay within
 * their bounds). Built again with CRASH_IN_INIT: a guest whose
 * initialisation faults. */
#include "sbx_guest.h"

volatile int64_t marker;          /* set on the way to the fault */
int64_t last_set;                 /* set by set_value: read back from a snapshot's core */
static volatile uintptr_t bad_addr = 0x10; /* in the never-mapped first page */

__attribute__((noinline)) static int64_t square(int64_t x)
{
    int64_t y = x * x;
    return y;
}

static void sum_squares(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    int64_t total = 0;
    for (int64_t i = 1; i <= sbx_arg_i64(a, 0); i++)
        total += square(i);
    sbx_ret_i64(r, total);
}

static void set_value(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    last_set = sbx_arg_i64(a, 0);
    sbx_ret_i64(r, last_set);
}

__attribute__((noinline)) static void innermost(int64_t v)
{
    *(volatile int64_t *)bad_addr = v;
}

__attribute__((noinline)) static void middle(int64_t v)
{
    innermost(v + 1);
}

__attribute__((noinline)) static void outer(int64_t v)
{
    marker = v;
    middle(v + 1);
}

static void crash(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    outer(sbx_arg_i64(a, 0));
    sbx_ret_i64(r, 0);
}

/* Runs until the deadline. */
static void spin(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    for (;;)
        marker = marker + sbx_arg_i64(a, 0);
    sbx_ret_i64(r, 0);
}

/* Fill MiB of heap with non-zero bytes, then fault. */
static void fill_and_crash(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    size_t n = (size_t)sbx_arg_i64(a, 0) << 20;
    uint8_t *p = sbx_alloc(n);
    if (!p)
        sbx_abort(1, "fill_and_crash: not that much memory");
    memset(p, 0xa5, n);
    crash(a, r);
}

void sbx_guest_init(void)
{
#ifdef CRASH_IN_INIT /* crash-init.elf: initialisation itself faults */
    outer(100);
#endif
    sbx_register("sum_squares", SBX_T_I64, sum_squares, 1, SBX_T_I64);
    sbx_register("set_value", SBX_T_I64, set_value, 1, SBX_T_I64);
    sbx_register("crash", SBX_T_I64, crash, 1, SBX_T_I64);
    sbx_register("fill_and_crash", SBX_T_I64, fill_and_crash, 1, SBX_T_I64);
    sbx_register("spin", SBX_T_I64, spin, 1, SBX_T_I64);
}
