/* fuzz_elf.c - the ELF loader and its note parsing on arbitrary bytes; what
 * it accepts is then laid out in guest memory, which must stay in bounds. */
#include <stdlib.h>

#include "vcpu/vcpu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sbx_guest *g = NULL;
    struct sbx_diag d = { 0 };
    if (sbx_guest_from_memory(data, size, "fuzz.elf", &g, &d))
        return 0;
    SBX_OPTS(sbx_load_opts, strict, .require_note = true);
    SBX_OPTS(sbx_load_opts, relaxed, .policy = SBX_VERSION_RELAXED);
    sbx_guest_check_version(g, &strict, &d);
    sbx_guest_check_version(g, &relaxed, &d);
    /* exactly the smallest guest memory: ASan sees any write past it */
    struct sbx_vm vm = { .mem = calloc(1, SBX_MEM_MIN), .mem_size = SBX_MEM_MIN };
    if (vm.mem)
        sbx_mem_prepare(&vm, g, 0, 0, NULL); /* an image too large for it is refused, not laid out */
    free(vm.mem);
    sbx_guest_free(g);
    return 0;
}
