/* snapfix.h - make fuzzed snapshot bytes consistent where random bytes almost
 * never are (checksums, file size), so the fuzzer reaches the checks behind
 * them. Only fields the parser would otherwise reject first are touched. */
#ifndef SBX_SNAPFIX_H
#define SBX_SNAPFIX_H

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "snapshot/snapshot.h"

enum { FIX_HEADER = 1, FIX_INDEX = 2, FIX_CHUNKS = 4 };

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
    if (index_in && (what & FIX_INDEX))
        h->index_xxh3 = XXH3_64bits(buf + index_offset, index_size);
    if (what & FIX_HEADER)
        h->header_xxh3 = sbx_snap_header_hash(h);
}

/* A fixed-up copy of data, opened as sbx_snapshot_open opens a file (any
 * host patch version accepted); NULL if it is rejected. */
static inline struct sbx_snapshot *snapfix_open(const uint8_t *data, size_t size, unsigned what)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return NULL;
    memcpy(buf, data, size);
    snapfix(buf, size, what);
    struct sbx_snapshot *snap = NULL;
    struct sbx_diag d = { 0 };
    SBX_OPTS(sbx_snapshot_open_opts, relaxed, .policy = SBX_VERSION_RELAXED);
    if (sbx_snapshot_from_memory(buf, size, "fuzz.snap", &relaxed, &snap, &d))
        snap = NULL;
    free(buf);
    return snap;
}

#endif
