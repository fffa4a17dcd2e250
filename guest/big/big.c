/* big.c - a guest whose image reaches past 21 MiB: 16 MiB of read-only data,
 * then its data and 4 MiB of bss. Its pages keep their own protections far
 * past the first 2 MiB (tests/test_kvm.c). */
#include "sbx_guest.h"

#define TABLE_SIZE (16u << 20)
#define SCRATCH_SIZE (4u << 20)

__attribute__((aligned(4096))) static const uint8_t table[TABLE_SIZE] = { [0] = 1, [TABLE_SIZE - 1] = 2 };
static volatile uint64_t far_counter = 40;
static uint8_t scratch[SCRATCH_SIZE];

/* table's ends and the counter past it: 1 + 2 + 41 on the first call */
static void sum(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a;
    const volatile uint8_t *t = table;
    sbx_ret_u64(r, t[0] + t[TABLE_SIZE - 1] + ++far_counter);
}

/* Where the image's far parts and the heap are: the heap starts past them. */
static void layout(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a;
    uint64_t heap = SBX_BOOT->heap_start;
    int ok = (uintptr_t)&far_counter > 16u << 20 && (uintptr_t)(scratch + SCRATCH_SIZE) <= heap &&
              heap < SBX_BOOT->heap_end && sbx_alloc(64) != 0;
    sbx_ret_u64(r, ok ? heap : 0);
}

/* Every page of scratch written and read back. */
static void fill(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    uint64_t seed = sbx_arg_u64(a, 0), s = 0;
    for (uint32_t i = 0; i < SCRATCH_SIZE; i += 4096)
        scratch[i] = (uint8_t)(seed + i / 4096);
    for (uint32_t i = 0; i < SCRATCH_SIZE; i += 4096)
        s += scratch[i];
    sbx_ret_u64(r, s);
}

/* A store into the read-only table, 16 MiB into the image: a page fault. */
static void write_table(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a, (void)r;
    *(volatile uint8_t *)(uintptr_t)&table[TABLE_SIZE - 4096] = 9;
}

/* A jump into data: no-execute, a page fault. */
static void exec_data(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a, (void)r;
    scratch[SCRATCH_SIZE - 64] = 0xc3; /* ret */
    ((void (*)(void))(uintptr_t)&scratch[SCRATCH_SIZE - 64])();
}

void sbx_guest_init(void)
{
    sbx_register("sum", SBX_T_U64, sum, 0);
    sbx_register("layout", SBX_T_U64, layout, 0);
    sbx_register("fill", SBX_T_U64, fill, 1, SBX_T_U64);
    sbx_register("write_table", SBX_T_VOID, write_table, 0);
    sbx_register("exec_data", SBX_T_VOID, exec_data, 0);
}
