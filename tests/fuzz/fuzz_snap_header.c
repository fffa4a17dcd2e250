/* fuzz_snap_header.c - the snapshot header, its sections (vCPU records, MSRs,
 * CPUID, XSAVE, functions) and the chunk index checks, with the header and
 * section checksums (and on odd-length inputs the index checksum) made
 * right; then the version verdict under every policy. */
#include "snapfix.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sbx_snapshot *snap =
        snapfix_open(data, size, FIX_HEADER | FIX_SECTIONS | (size % 2 ? FIX_INDEX : 0));
    if (!snap)
        return 0;
    struct sbx_snapshot_info info;
    sbx_snapshot_info(snap, &info);
    struct sbx_func_info f;
    for (size_t i = 0; i < info.nfuncs; i++)
        if (sbx_snapshot_function(snap, i, &f) || strlen(f.name) > SBX_MAX_NAME)
            abort();
    struct sbx_diag d = { 0 };
    for (int p = SBX_VERSION_EXACT; p <= SBX_VERSION_ABI; p++)
        sbx_snapshot_check_compat(snap, (enum sbx_version_policy)p, p == SBX_VERSION_ABI, &d);
    sbx_snapshot_free(snap);
    return 0;
}
