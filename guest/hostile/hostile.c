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

/* Recursion to a given depth, 512+ bytes a frame: how deep a stack is. */
static void deep(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    depth_limit = sbx_arg_u64(a, 0);
    uint64_t v = recurse(0);
    depth_limit = ~0ull;
    sbx_ret_u64(r, v);
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


/* ---- State a request can change outside guest memory (issue 10) ---------- */

static inline void wrmsr64(uint32_t idx, uint64_t v)
{
    __asm__ volatile("wrmsr" : : "c"(idx), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : "memory");
}

static inline uint64_t rdmsr64(uint32_t idx)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(idx) : "memory");
    return (uint64_t)hi << 32 | lo;
}

/* wrmsr(index, value): an MSR the CPU refuses faults (#GP) the call. */
static void do_wrmsr(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)r;
    wrmsr64((uint32_t)sbx_arg_u64(a, 0), sbx_arg_u64(a, 1));
}

static void do_rdmsr(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    sbx_ret_u64(r, rdmsr64((uint32_t)sbx_arg_u64(a, 0)));
}

/* rdmsr_list(bytes of u64 indices) -> bytes of u64 values, one per index. */
static uint64_t msr_values[64];
static void rdmsr_list(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    const uint64_t *idx = sbx_arg_ptr(a, 0);
    size_t n = sbx_arg_len(a, 0) / 8;
    if (n > 64)
        n = 64;
    for (size_t i = 0; i < n; i++)
        msr_values[i] = rdmsr64((uint32_t)idx[i]);
    sbx_ret_buf(r, msr_values, n * 8);
}

/* set_dr(which, value) for DR0..DR3, DR6, DR7; get_dr(which). */
static void set_dr(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)r;
    uint64_t v = sbx_arg_u64(a, 1);
    switch (sbx_arg_i64(a, 0)) {
    case 0: __asm__ volatile("mov %0, %%dr0" : : "r"(v)); break;
    case 1: __asm__ volatile("mov %0, %%dr1" : : "r"(v)); break;
    case 2: __asm__ volatile("mov %0, %%dr2" : : "r"(v)); break;
    case 3: __asm__ volatile("mov %0, %%dr3" : : "r"(v)); break;
    case 6: __asm__ volatile("mov %0, %%dr6" : : "r"(v)); break;
    case 7: __asm__ volatile("mov %0, %%dr7" : : "r"(v)); break;
    default: sbx_abort(5, "set_dr: no such debug register");
    }
}

static uint64_t get_dr_n(int64_t which)
{
    uint64_t v = 0;
    switch (which) {
    case 0: __asm__ volatile("mov %%dr0, %0" : "=r"(v)); break;
    case 1: __asm__ volatile("mov %%dr1, %0" : "=r"(v)); break;
    case 2: __asm__ volatile("mov %%dr2, %0" : "=r"(v)); break;
    case 3: __asm__ volatile("mov %%dr3, %0" : "=r"(v)); break;
    case 6: __asm__ volatile("mov %%dr6, %0" : "=r"(v)); break;
    case 7: __asm__ volatile("mov %%dr7, %0" : "=r"(v)); break;
    default: sbx_abort(5, "get_dr: no such debug register");
    }
    return v;
}

static void get_dr(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    sbx_ret_u64(r, get_dr_n(sbx_arg_i64(a, 0)));
}

/* get_drs() -> bytes: DR0, DR1, DR2, DR3, DR6, DR7 as u64. */
static uint64_t dr_values[6];
static void get_drs(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a;
    static const int64_t which[6] = { 0, 1, 2, 3, 6, 7 };
    for (int i = 0; i < 6; i++)
        dr_values[i] = get_dr_n(which[i]);
    sbx_ret_buf(r, dr_values, sizeof dr_values);
}

/* dr_rewrite(): write DR0-DR3 and DR7 back with the values they hold, which
 * changes nothing architecturally. The test calls it after each reset: under
 * QEMU's TCG a breakpoint of an earlier guest can outlive its VM until DR7
 * changes (see tests/test_isolation.c). */
static void dr_rewrite(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a; (void)r;
    uint64_t v;
    __asm__ volatile("mov %%dr0, %0\n\tmov %0, %%dr0" : "=&r"(v));
    __asm__ volatile("mov %%dr1, %0\n\tmov %0, %%dr1" : "=&r"(v));
    __asm__ volatile("mov %%dr2, %0\n\tmov %0, %%dr2" : "=&r"(v));
    __asm__ volatile("mov %%dr3, %0\n\tmov %0, %%dr3" : "=&r"(v));
    /* DR7 with the local-exact bit flipped, then as it was: QEMU drops and
     * re-creates every breakpoint when bits other than the enables change */
    __asm__ volatile("mov %%dr7, %0\n\txor $0x100, %0\n\tmov %0, %%dr7\n\t"
                     "xor $0x100, %0\n\tmov %0, %%dr7" : "=&r"(v));
}

/* The honest functions: what every request after a reset must see. */
static volatile uint64_t count __attribute__((aligned(64)));
static volatile uint64_t table[512] __attribute__((aligned(4096))) = { 1, 2, 3, 5, 8, 13, 21, 34 };

static void counter(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a;
    sbx_ret_u64(r, ++count);
}

/* A value computed from static data and code only; writes nothing but its
 * stack and its result. */
static void answer(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a;
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned i = 0; i < sizeof table / sizeof table[0]; i++)
        h = (h ^ table[i]) * 0x100000001b3ull;
    const volatile uint8_t *code = (const volatile uint8_t *)(uintptr_t)&answer;
    for (unsigned i = 0; i < 64; i++)
        h = (h ^ code[i]) * 0x100000001b3ull;
    sbx_ret_u64(r, h);
}

/* addr_of(which): 0 count, 1 table, 2 answer's code, 3 a heap page. */
static void addr_of(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    static uint64_t addrs[4];
    addrs[0] = (uint64_t)(uintptr_t)&count;
    addrs[1] = (uint64_t)(uintptr_t)table;
    addrs[2] = (uint64_t)(uintptr_t)&answer;
    addrs[3] = SBX_LAYOUT_HEAP + 16 * SBX_PAGE_SIZE;
    sbx_ret_u64(r, addrs[(uint64_t)sbx_arg_i64(a, 0) & 3]);
}

/* Finding 1's attack: an execution breakpoint on answer (DR0, DR7 L0). */
static void dr_trap(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a; (void)r;
    uint64_t target = (uint64_t)(uintptr_t)&answer, dr7 = 0x401;
    __asm__ volatile("mov %0, %%dr0\n\tmov %1, %%dr7" : : "r"(target), "r"(dr7));
}

static void wr_tsc(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)r;
    wrmsr64(0x10, sbx_arg_u64(a, 0));
}

static void rd_tsc(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a;
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    sbx_ret_u64(r, (uint64_t)hi << 32 | lo);
}

/* ---- Exits the host must not leave half-done --------------------------------
 * Guest-physical addresses outside the memory slot are MMIO. The guest runs at
 * ring 0 and edits its own page tables: the last page-directory entry maps a
 * 2 MiB page at the first address past guest memory. */
#define MMIO_VA (511ull << 21)
static volatile uint8_t *map_mmio(void)
{
    uint64_t gpa = SBX_XCHG->mem_size; /* a 2 MiB multiple, outside the slot */
    volatile uint64_t *pd = (volatile uint64_t *)(uintptr_t)SBX_LAYOUT_PD;
    pd[511] = gpa | 0x83; /* present, writable, 2 MiB page */
    __asm__ volatile("invlpg (%0)" : : "r"(MMIO_VA) : "memory");
    __asm__ volatile("invlpg (%0)" : : "r"(MMIO_VA + 0x1000) : "memory");
    return (volatile uint8_t *)(uintptr_t)MMIO_VA;
}

/* split_mmio(kind): an 8-byte access that straddles two 4 KiB pages of MMIO,
 * so KVM needs two completions (kind 0 read, 1 write, 2 a 16-byte SSE read).
 * If the host ever lets it finish, this returns a value of the guest's choice
 * to whatever request the host thinks it is running. */
static void split_mmio(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    volatile uint8_t *p = map_mmio() + 0x1000 - 4;
    uint64_t v = 0;
    switch (sbx_arg_i64(a, 0)) {
    case 0: v = *(volatile uint64_t *)p; break;
    case 1: *(volatile uint64_t *)p = 0x4141414141414141ull; break;
    default: {
        uint64_t lo, hi;
        __asm__ volatile("movdqu (%2), %%xmm0\n\tmovq %%xmm0, %0\n\tpsrldq $8, %%xmm0\n\t"
                         "movq %%xmm0, %1" : "=r"(lo), "=r"(hi) : "r"(p - 4) : "xmm0", "memory");
        v = lo ^ hi;
    }
    }
    sbx_ret_u64(r, 0x1337c0deull + (v & 0));
}

/* port_io(kind, port): kind 0 inb, 1 outb, 2 rep insb of 8 bytes, 3 rep outsb,
 * 4 inb right after mov ss (an interrupt shadow pending at the exit). */
static void port_io(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    static uint8_t buf[16] = "outsb-data-1234";
    uint16_t port = (uint16_t)sbx_arg_u64(a, 1);
    uint64_t v = 0;
    switch (sbx_arg_i64(a, 0)) {
    case 0: { uint8_t b; __asm__ volatile("inb %1, %0" : "=a"(b) : "d"(port)); v = b; break; }
    case 1: __asm__ volatile("outb %0, %1" : : "a"((uint8_t)0x5a), "d"(port)); break;
    case 2: {
        void *d = buf;
        uint64_t n = 8;
        __asm__ volatile("rep insb" : "+D"(d), "+c"(n) : "d"(port) : "memory");
        break;
    }
    case 3: {
        const void *s = buf;
        uint64_t n = 8;
        __asm__ volatile("rep outsb" : "+S"(s), "+c"(n) : "d"(port) : "memory");
        break;
    }
    default: {
        uint8_t b;
        __asm__ volatile("mov %%ss, %%cx\n\tmov %%cx, %%ss\n\tinb %1, %0"
                         : "=a"(b) : "d"(port) : "rcx");
        v = b;
    }
    }
    sbx_ret_u64(r, 0x1337c0deull + (v & 0));
}

/* KVM paravirtual steal time: enable a record at gpa (| 1 = enabled). */
static void steal_time(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)r;
    wrmsr64(0x4b564d03, sbx_arg_u64(a, 0) | 1);
}

/* ---- Memory ------------------------------------------------------------------ */

/* touch(pages, pattern): write pattern over `pages` heap pages; returns how
 * many were written. */
static void touch(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    uint64_t pages = sbx_arg_u64(a, 0), pattern = sbx_arg_u64(a, 1);
    uint64_t avail = (SBX_XCHG->mem_size - SBX_LAYOUT_HEAP) / SBX_PAGE_SIZE;
    if (pages > avail)
        pages = avail;
    for (uint64_t p = 0; p < pages; p++) {
        volatile uint64_t *w = (volatile uint64_t *)(uintptr_t)(SBX_LAYOUT_HEAP + p * SBX_PAGE_SIZE);
        for (unsigned i = 0; i < SBX_PAGE_SIZE / 8; i += 61)
            w[i] = pattern ^ (p << 32) ^ i;
    }
    sbx_ret_u64(r, pages);
}

/* poke(gpa, value): an 8-byte store anywhere mapped, read-only pages too
 * (CR0.WP cleared for it): code, page tables, the exchange area. */
static void poke(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)r;
    uint64_t cr0;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 & ~(1ull << 16)));
    *(volatile uint64_t *)(uintptr_t)sbx_arg_u64(a, 0) = sbx_arg_u64(a, 1);
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0));
}

/* fault_mid(kind, pages): write `pages` heap pages, then fault part-way
 * through an access: 0 a read of an unmapped page, 1 rep stosb running into
 * the stack guard page, 2 an 8-byte store straddling it. */
static void fault_mid(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    struct sbx_abi_value t[2] = { { .type = SBX_T_U64, .u.u64 = sbx_arg_u64(a, 1) },
                                  { .type = SBX_T_U64, .u.u64 = 0xfeedfacecafebeefull } };
    touch(t, r);
    switch (sbx_arg_i64(a, 0)) {
    case 0: sbx_ret_i64(r, *(volatile int64_t *)null_addr); break;
    case 1: {
        void *d = (void *)(uintptr_t)(SBX_LAYOUT_STACK_GUARD - 100);
        uint64_t n = 200;
        __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(0xee) : "memory");
        break;
    }
    default:
        *(volatile uint64_t *)(uintptr_t)(SBX_LAYOUT_STACK_GUARD - 4) = 0xddddddddddddddddull;
    }
}

/* remap_table(gpa): point the page-table entry of table's page at gpa, read
 * through it (the translation is now cached in the TLB) and return what it
 * read. A reset puts the entry back; the next request must not see gpa. */
static void remap_table(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    uint64_t va = (uint64_t)(uintptr_t)table;
    volatile uint64_t *pt = (volatile uint64_t *)(uintptr_t)SBX_LAYOUT_PT;
    pt[va / SBX_PAGE_SIZE] = (sbx_arg_u64(a, 0) & ~(SBX_PAGE_SIZE - 1)) | 0x3 | (1ull << 63);
    __asm__ volatile("invlpg (%0)" : : "r"(va) : "memory");
    sbx_ret_u64(r, table[0]);
}

/* Calls the host function "reenter() -> i64" and returns its result, or the
 * call's negative status. */
static void host_reenter(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a;
    struct sbx_abi_value ret;
    int rc = sbx_host_call("reenter", &ret, 0, NULL);
    sbx_ret_i64(r, rc ? rc : ret.u.i64);
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
    sbx_register("wrmsr", SBX_T_VOID, do_wrmsr, 2, SBX_T_U64, SBX_T_U64);
    sbx_register("rdmsr", SBX_T_U64, do_rdmsr, 1, SBX_T_U64);
    sbx_register("rdmsr_list", SBX_T_BYTES, rdmsr_list, 1, SBX_T_BYTES);
    sbx_register("set_dr", SBX_T_VOID, set_dr, 2, SBX_T_I64, SBX_T_U64);
    sbx_register("get_dr", SBX_T_U64, get_dr, 1, SBX_T_I64);
    sbx_register("get_drs", SBX_T_BYTES, get_drs, 0);
    sbx_register("counter", SBX_T_U64, counter, 0);
    sbx_register("answer", SBX_T_U64, answer, 0);
    sbx_register("addr_of", SBX_T_U64, addr_of, 1, SBX_T_I64);
    sbx_register("dr_trap", SBX_T_VOID, dr_trap, 0);
    sbx_register("dr_rewrite", SBX_T_VOID, dr_rewrite, 0);
    sbx_register("wr_tsc", SBX_T_VOID, wr_tsc, 1, SBX_T_U64);
    sbx_register("rd_tsc", SBX_T_U64, rd_tsc, 0);
    sbx_register("split_mmio", SBX_T_U64, split_mmio, 1, SBX_T_I64);
    sbx_register("port_io", SBX_T_U64, port_io, 2, SBX_T_I64, SBX_T_U64);
    sbx_register("steal_time", SBX_T_VOID, steal_time, 1, SBX_T_U64);
    sbx_register("touch", SBX_T_U64, touch, 2, SBX_T_U64, SBX_T_U64);
    sbx_register("deep", SBX_T_U64, deep, 1, SBX_T_U64);
    sbx_register("poke", SBX_T_VOID, poke, 2, SBX_T_U64, SBX_T_U64);
    sbx_register("fault_mid", SBX_T_I64, fault_mid, 2, SBX_T_I64, SBX_T_U64);
    sbx_register("host_reenter", SBX_T_I64, host_reenter, 0);
    sbx_register("remap_table", SBX_T_U64, remap_table, 1, SBX_T_U64);
}
