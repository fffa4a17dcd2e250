/* bench.c - the benchmark guest: BENCH_FILL_PAGES of content written at init,
 * a call that dirties n pages, and an empty call. */
#include "content.h"
#include "sbx_guest.h"

static volatile uint8_t *dirty_area;

static void dirty(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    uint64_t n = sbx_arg_u64(a, 0);
    if (n > BENCH_DIRTY_PAGES)
        n = BENCH_DIRTY_PAGES;
    for (uint64_t p = 0; p < n; p++)
        dirty_area[p * SBX_PAGE_SIZE] += 1;
    sbx_ret_u64(r, n);
}

static void nop(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a;
    sbx_ret_i64(r, 0);
}

void sbx_guest_init(void)
{
    uint8_t *fill = sbx_alloc((BENCH_FILL_PAGES + BENCH_DIRTY_PAGES) * SBX_PAGE_SIZE);
    if ((uint64_t)(uintptr_t)fill != BENCH_FILL_GPA)
        sbx_abort(1, "bench: the content is not where bench/ expects it");
    for (unsigned p = 0; p < BENCH_FILL_PAGES + BENCH_DIRTY_PAGES; p++)
        bench_fill_page(fill + p * SBX_PAGE_SIZE, p);
    dirty_area = fill + BENCH_FILL_PAGES * SBX_PAGE_SIZE;
    sbx_register("dirty", SBX_T_U64, dirty, 1, SBX_T_U64);
    sbx_register("nop", SBX_T_I32, nop, 0);
}
