/* memory.c - guest memory: bounds-checked access and loading the image. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vcpu.h"

void *sbx_mem_at(const struct sbx_vm *vm, uint64_t gpa, uint64_t len)
{
    if (gpa > vm->mem_size || len > vm->mem_size - gpa)
        return NULL;
    return vm->mem + gpa;
}

/* The host wrote [gpa, gpa + len), already checked by sbx_mem_at: a reset
 * must put those pages back too, and KVM's dirty log does not see them. */
void sbx_mem_mark_host_write(struct sbx_vm *vm, uint64_t gpa, uint64_t len)
{
    if (!vm->host_dirty || len == 0)
        return;
    for (uint64_t p = gpa / SBX_PAGE_SIZE; p <= (gpa + len - 1) / SBX_PAGE_SIZE; p++)
        vm->host_dirty[p / 64] |= 1ull << (p % 64);
}

#define HUGE_PAGE (SBX_U64(2) << 20)

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

/* [image][page tables][guard][stack][exchange area][heap]: the page tables
 * give 4 KiB pages to everything past the first 2 MiB up to the stack's top,
 * its guard page and the image's protections included. A stack or exchange
 * area of the default size stays below the image. The number of page tables
 * depends on where the region ends, which depends on their number: settle it. */
static void place_regions(struct sbx_layout *l, uint64_t stack_size, uint64_t xchg_size)
{
    bool high_stack = stack_size > SBX_DEFAULT_STACK_SIZE;
    bool high_xchg = xchg_size > SBX_LAYOUT_XCHG_SIZE;
    uint64_t start = l->image_end > SBX_LAYOUT_IMAGE_END ? l->image_end : SBX_LAYOUT_IMAGE_END;
    l->stack_guard = SBX_LAYOUT_STACK_GUARD, l->stack_top = SBX_LAYOUT_STACK_TOP;
    l->xchg = SBX_LAYOUT_XCHG, l->xchg_size = SBX_LAYOUT_XCHG_SIZE;
    for (int round = 0; round < 4; round++) {
        uint64_t at = start + l->nextra_pt * SBX_PAGE_SIZE, end = l->image_end;
        if (high_stack) {
            l->stack_guard = at;
            l->stack_top = end = at = at + SBX_PAGE_SIZE + stack_size;
        }
        if (high_xchg)
            l->xchg = at, l->xchg_size = xchg_size, at += xchg_size;
        l->heap_start = at;
        uint64_t n = end > SBX_LAYOUT_IMAGE_END ? align_up(end, HUGE_PAGE) / HUGE_PAGE - 1 : 0;
        if (n == l->nextra_pt)
            break;
        l->nextra_pt = n;
    }
    l->extra_pt = start;
}

int sbx_layout_for(const struct sbx_guest *g, uint64_t mem_size, uint64_t stack_size,
                   uint64_t xchg_size, struct sbx_layout *l, struct sbx_diag *diag)
{
    uint64_t end = SBX_LAYOUT_IMAGE;
    for (size_t i = 0; i < g->nseg; i++)
        if (g->seg[i].vaddr + g->seg[i].memsz > end)
            end = g->seg[i].vaddr + g->seg[i].memsz;
    *l = (struct sbx_layout){ .image_end = align_up(end, SBX_PAGE_SIZE) };
    place_regions(l, stack_size, xchg_size);
    if (l->heap_start >= mem_size)
        return sbx_fail(diag, SBX_E_LIMIT, "%s: the guest image is too large for %llu MiB of "
                        "guest memory: it, its page tables, stack and exchange area end at %llu KiB, "
                        "leaving no heap", g->path, (unsigned long long)(mem_size >> 20),
                        (unsigned long long)(l->heap_start >> 10));
    return 0;
}

/* The loader has checked every segment against the file and the image range,
 * and sbx_layout_for that the image fits the memory. */
void sbx_mem_load_segments(struct sbx_vm *vm, const struct sbx_guest *g)
{
    for (size_t i = 0; i < g->nseg; i++) {
        const struct sbx_segment *seg = &g->seg[i];
        uint8_t *dst = sbx_mem_at(vm, seg->vaddr, seg->memsz);
        memcpy(dst, g->file + seg->offset, seg->filesz);
        memset(dst + seg->filesz, 0, seg->memsz - seg->filesz);
    }
}

static void write_boot_info(struct sbx_vm *vm, const struct sbx_layout *l)
{
    struct sbx_boot_info b = {
        .magic = SBX_BOOT_MAGIC, .abi = SBX_ABI_VERSION, .mem_size = vm->mem_size,
        .image_end = l->image_end, .heap_start = l->heap_start, .heap_end = vm->mem_size,
        .stack_guard = l->stack_guard, .stack_top = l->stack_top,
        .xchg = l->xchg, .xchg_size = l->xchg_size,
    };
    memcpy(vm->mem + SBX_LAYOUT_BOOT, &b, sizeof b);
}

int sbx_mem_prepare(struct sbx_vm *vm, const struct sbx_guest *g, uint64_t stack_size,
                    uint64_t xchg_size, struct sbx_diag *diag)
{
    struct sbx_layout l;
    int rc = sbx_layout_for(g, vm->mem_size, stack_size, xchg_size, &l, diag);
    if (rc)
        return rc;
    vm->xchg_gpa = l.xchg;
    vm->xchg_size = l.xchg_size;
    sbx_mem_load_segments(vm, g);
    sbx_x86_build_tables(vm, g, &l);
    write_boot_info(vm, &l);
    struct sbx_xchg *x = sbx_xchg(vm);
    x->magic = SBX_XCHG_MAGIC;
    x->abi = SBX_ABI_VERSION;
    x->mem_size = vm->mem_size;
    return 0;
}

/* A host core dump must not hold every tenant's memory, and a child made by
 * fork() must not inherit it. Advice only: a kernel without it still runs. */
void sbx_mem_private(void *mem, uint64_t size)
{
    madvise(mem, size, MADV_DONTDUMP);
    madvise(mem, size, MADV_DONTFORK);
}

/* /proc/self/pagemap: bit 63 present, bit 62 swapped. A page of anonymous
 * memory that is neither was never touched, so it reads as zero. */
#define PAGEMAP_PRESENT (1ull << 63)
#define PAGEMAP_SWAPPED (1ull << 62)

uint64_t *sbx_vm_touched_pages(const struct sbx_vm *vm)
{
    uint64_t pages = vm->mem_size / SBX_PAGE_SIZE;
    uint64_t *bits = calloc((pages + 63) / 64, sizeof *bits);
    uint64_t *entries = malloc(pages * sizeof *entries);
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    off_t at = (off_t)((uintptr_t)vm->mem / SBX_PAGE_SIZE * sizeof *entries);
    if (!bits || !entries || fd < 0 || sbx_pread_all(fd, entries, pages * sizeof *entries, at) < 0) {
        free(bits);
        bits = NULL; /* no map: the caller scans every page */
        goto out;
    }
    for (uint64_t p = 0; p < pages; p++)
        if (entries[p] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED))
            bits[p / 64] |= 1ull << (p % 64);
out:
    if (fd >= 0)
        close(fd);
    free(entries);
    return bits;
}

int sbx_vm_adopt_boot_info(struct sbx_vm *vm, struct sbx_diag *diag)
{
    struct sbx_boot_info b;
    memcpy(&b, sbx_boot_info(vm), sizeof b);
    bool ok = b.magic == SBX_BOOT_MAGIC && b.xchg % SBX_PAGE_SIZE == 0 &&
              b.xchg_size >= SBX_LAYOUT_XCHG_SIZE && b.xchg_size % SBX_PAGE_SIZE == 0 &&
              b.xchg_size <= SBX_MAX_XCHG_SIZE && sbx_mem_at(vm, b.xchg, b.xchg_size);
    if (!ok)
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "the guest's boot information page is not "
                        "valid: magic 0x%x, exchange area 0x%llx, %llu bytes", b.magic,
                        (unsigned long long)b.xchg, (unsigned long long)b.xchg_size);
    vm->xchg_gpa = b.xchg;
    vm->xchg_size = b.xchg_size;
    return 0;
}
