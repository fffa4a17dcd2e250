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

/* The loader has checked every segment against the file and the image range. */
void sbx_mem_load_segments(struct sbx_vm *vm, const struct sbx_guest *g)
{
    for (size_t i = 0; i < g->nseg; i++) {
        const struct sbx_segment *seg = &g->seg[i];
        uint8_t *dst = sbx_mem_at(vm, seg->vaddr, seg->memsz);
        memcpy(dst, g->file + seg->offset, seg->filesz);
        memset(dst + seg->filesz, 0, seg->memsz - seg->filesz);
    }
}

void sbx_mem_prepare(struct sbx_vm *vm, const struct sbx_guest *g)
{
    sbx_mem_load_segments(vm, g);
    sbx_x86_build_tables(vm, g);
    struct sbx_xchg *x = sbx_xchg(vm);
    x->magic = SBX_XCHG_MAGIC;
    x->abi = SBX_ABI_VERSION;
    x->mem_size = vm->mem_size;
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
