/* fuzz_snap_chunks.c - chunk index, checksums and LZ4 decompression of every
 * chunk (sbx_snapshot_verify, and a template's sealed memory), with every
 * checksum made right so the decoder sees the fuzzed bytes. */
#include "snapfix.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sbx_snapshot *snap = snapfix_open(data, size, FIX_HEADER | FIX_SECTIONS | FIX_INDEX | FIX_CHUNKS);
    if (!snap)
        return 0;
    struct sbx_diag d = { 0 };
    if (sbx_snapshot_verify(snap, &d) == 0 && snap->hdr->mem_size <= (64u << 20)) {
        struct sbx_template *t = NULL;
        if (sbx_template_from_snapshot(snap, &t, &d) == 0)
            sbx_template_free(t);
    }
    sbx_snapshot_free(snap);
    return 0;
}
