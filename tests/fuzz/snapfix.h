/* snapfix.h - make fuzzed snapshot bytes consistent where random bytes almost
 * never are (checksums, file size), so the fuzzer reaches the checks behind
 * them. Only fields the parser would otherwise reject first are touched. */
#ifndef SBX_SNAPFIX_H
#define SBX_SNAPFIX_H

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "snapshot/snapshot.h"

enum { FIX_HEADER = 1, FIX_INDEX = 2, FIX_CHUNKS = 4, FIX_SECTIONS = 8 };

static inline void snapfix(uint8_t *buf, size_t size, unsigned what)
{
    if (size < sizeof(struct sbx_snap_header))
        return;
    struct sbx_snap_header *h = (struct sbx_snap_header *)buf;
    h->file_size = size;
    /* read once: a fuzzed index may overlap the header and rewrite these */
    const uint32_t nchunks = h->nchunks;
    const uint64_t index_offset = h->index_offset;
    const uint64_t index_size = (uint64_t)nchunks * sizeof(struct sbx_snap_chunk);
    bool index_in = index_offset % 8 == 0 && index_offset <= size &&
                    index_size <= size - index_offset;
    if (index_in && (what & FIX_CHUNKS)) {
        struct sbx_snap_chunk *c = (struct sbx_snap_chunk *)(buf + index_offset);
        for (uint32_t i = 0; i < nchunks; i++)
            if (c[i].offset <= size && c[i].comp_size <= size - c[i].offset)
                c[i].xxh3 = XXH3_64bits(buf + c[i].offset, c[i].comp_size);
    }
    const uint64_t sec_offset = h->sections_offset, sec_size = h->sections_size;
    if ((what & FIX_SECTIONS) && sec_offset <= size && sec_size <= size - sec_offset) {
        sbx_snap_seal_sections(buf + sec_offset, sec_size);
        h->sections_xxh3 = XXH3_64bits(buf + sec_offset, sec_size);
    }
    if (index_in && (what & FIX_INDEX))
        h->index_xxh3 = XXH3_64bits(buf + index_offset, index_size);
    if (what & FIX_HEADER)
        h->header_xxh3 = sbx_snap_header_hash(h);
}

/* A plausible 64-bit vCPU state with every part format 2 records: events,
 * debug registers, XCR0, a sorted MSR list, CPUID entries and an XSAVE area
 * larger than the legacy 4096 bytes. No KVM needed. */
static inline void snapfix_vcpu_state(struct sbx_vcpu_state *st)
{
    memset(st, 0, sizeof *st);
    st->regs = (struct kvm_regs){ .rip = SBX_LAYOUT_IMAGE, .rsp = SBX_LAYOUT_HEAP, .rflags = 2,
                                  .rax = 0x1122334455667788ull, .r15 = 15 };
    st->sregs.cr0 = 0x80050033, st->sregs.cr3 = 0x1000, st->sregs.cr4 = 0x6a0;
    st->sregs.efer = 0x500;
    st->sregs.cs = (struct kvm_segment){ .selector = 8, .limit = 0xffffffff, .type = 11,
                                         .present = 1, .s = 1, .l = 1, .g = 1 };
    st->sregs.gdt = (struct kvm_dtable){ .base = 0x2000, .limit = 23 };
    st->debugregs.dr6 = 0xffff0ff0, st->debugregs.dr7 = 0x400;
    st->events.nmi.masked = 1, st->events.interrupt.shadow = 1, st->events.flags = 0x10;
    st->xcrs.nr_xcrs = 1, st->xcrs.xcrs[0] = (struct kvm_xcr){ .xcr = 0, .value = 7 };
    static const uint32_t msr[] = { 0x10, 0x174, 0x175, 0x176, 0xc0000081, 0xc0000082 };
    for (uint32_t i = 0; i < sizeof msr / sizeof msr[0]; i++)
        st->msrs[st->nmsrs++] = (struct kvm_msr_entry){ .index = msr[i], .data = 0x1000 + i };
    st->cpuid[st->ncpuid++] = (struct kvm_cpuid_entry2){ .function = 0, .eax = 0xd,
        .ebx = 0x68747541, .edx = 0x69746e65, .ecx = 0x444d4163 }; /* "AuthenticAMD" */
    st->cpuid[st->ncpuid++] = (struct kvm_cpuid_entry2){ .function = 1, .ecx = 1, .edx = 2 };
    st->cpuid[st->ncpuid++] = (struct kvm_cpuid_entry2){ .function = 7, .flags = 1, .ebx = 3,
                                                         .ecx = 4 };
    st->xsave_size = 4096 + 576;
    for (uint32_t i = 0; i < st->xsave_size / 4; i++)
        st->xsave[i] = i % 97 == 0 ? i : 0;
}

/* A fixed-up copy of data, opened as sbx_snapshot_open opens a file, with
 * the most permissive version policy (so a template can be made of it);
 * NULL if it is rejected. */
static inline struct sbx_snapshot *snapfix_open(const uint8_t *data, size_t size, unsigned what)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return NULL;
    memcpy(buf, data, size);
    snapfix(buf, size, what);
    struct sbx_snapshot *snap = NULL;
    struct sbx_diag d = { 0 };
    struct sbx_snapshot_open_opts any = { .policy = SBX_VERSION_ABI };
    if (sbx_snapshot_from_memory(buf, size, "fuzz.snap", &any, &snap, &d))
        snap = NULL;
    free(buf);
    return snap;
}

#endif
