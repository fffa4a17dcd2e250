/* memory.c - guest memory: bounds-checked access and loading the image. */
#include <string.h>
#include <sys/mman.h>

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
