/* snapfix.h - make fuzzed snapshot bytes consistent where random bytes almost
 * never are (checksums, file size), so the fuzzer reaches the checks behind
 * them. Only fields the parser would otherwise reject first are touched. */
#ifndef SBX_SNAPFIX_H
#define SBX_SNAPFIX_H

#include <xxhash.h>

#include "snapshot/snapshot.h"

enum { FIX_HEADER = 1, FIX_INDEX = 2, FIX_CHUNKS = 4 };

static inline void snapfix(uint8_t *buf, size_t size, unsigned what)
{
    if (size < sizeof(struct sbx_snap_header))
        return;
    struct sbx_snap_header *h = (struct sbx_snap_header *)buf;
    h->file_size = size;
    uint64_t index_size = (uint64_t)h->nchunks * sizeof(struct sbx_snap_chunk);
    bool index_in = h->index_offset % 8 == 0 && h->index_offset <= size &&
                    index_size <= size - h->index_offset;
    if (index_in && (what & FIX_CHUNKS)) {
        struct sbx_snap_chunk *c = (struct sbx_snap_chunk *)(buf + h->index_offset);
        for (uint32_t i = 0; i < h->nchunks; i++)
            if (c[i].offset <= size && c[i].comp_size <= size - c[i].offset)
                c[i].xxh3 = XXH3_64bits(buf + c[i].offset, c[i].comp_size);
    }
    if (index_in && (what & FIX_INDEX))
        h->index_xxh3 = XXH3_64bits(buf + h->index_offset, index_size);
    if (what & FIX_HEADER)
        h->header_xxh3 = sbx_snap_header_hash(h);
}

#endif
