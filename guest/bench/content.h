/* content.h - the benchmark guest's memory content, shared by the guest (which
 * writes it at init) and bench/ (which builds the same image without KVM for
 * the host-side figures). Freestanding: no libc. */
#ifndef SBX_BENCH_CONTENT_H
#define SBX_BENCH_CONTENT_H

#include <stdint.h>

#include "sbx_abi.h"

#define BENCH_FILL_GPA SBX_LAYOUT_HEAP /* the guest's first allocation */
#define BENCH_FILL_PAGES 320u          /* fits the smallest guest memory (4 MiB) */
#define BENCH_DIRTY_GPA (BENCH_FILL_GPA + BENCH_FILL_PAGES * SBX_PAGE_SIZE)
#define BENCH_DIRTY_PAGES 128u         /* pages a call can dirty, already non-zero */

/* Text-like words with a quarter of random bytes: compresses about as well
 * as a guest's heap of strings and pointers. */
static inline void bench_fill_page(uint8_t *p, uint64_t page)
{
    static const char *const words[] = {
        "snapshot ", "restore ", "guest ", "memory ", "page ", "chunk ", "vcpu ", "template ",
        "reset ", "dirty ", "kvm ", "call ", "host ", "request ", "sandbox ", "the ",
    };
    uint64_t x = page * 0x9E3779B97F4A7C15ull + 1;
    unsigned i = 0;
    while (i < SBX_PAGE_SIZE) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if ((i & 255) < 64) {
            for (unsigned b = 0; b < 8 && i < SBX_PAGE_SIZE; b++)
                p[i++] = (uint8_t)(x >> (8 * b));
        } else {
            for (const char *w = words[x % 16]; *w && i < SBX_PAGE_SIZE; w++)
                p[i++] = (uint8_t)*w;
        }
    }
}

#endif
