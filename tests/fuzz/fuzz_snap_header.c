/* fuzz_snap_header.c - the snapshot header and chunk index checks, with the
 * header checksum (and on odd-length inputs the index checksum) made right. */
#include "snapfix.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sbx_snapshot *snap = snapfix_open(data, size, FIX_HEADER | (size % 2 ? FIX_INDEX : 0));
    if (!snap)
        return 0;
    struct sbx_snapshot_info info;
    sbx_snapshot_info(snap, &info);
    struct sbx_func_info f;
    for (size_t i = 0; i < info.nfuncs; i++)
        if (sbx_snapshot_function(snap, i, &f) || strlen(f.name) > SBX_MAX_NAME)
            abort();
    sbx_snapshot_free(snap);
    return 0;
}
