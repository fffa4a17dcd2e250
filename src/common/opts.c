/* opts.c - the one copy of a caller's sized struct (libbpf's OPTS pattern).
 *
 * Every struct a caller fills or receives begins with size_t sz, the size the
 * caller was compiled with. Every field after sz means "the default" when
 * zero, so the first version of each struct is sz alone and any longer prefix
 * is an older caller. A field added in a later release goes at or after its
 * struct's previous sizeof: an older library checks that the bytes from its
 * own sizeof on are zero, and never sees a field placed in its tail padding. */
#include <string.h>

#include "internal.h"

/* No struct of this API comes near this size: a larger sz is garbage (a
 * struct declared without SBX_OPTS), and must not make the library read or
 * write that far. */
#define SBX_OPTS_SZ_MAX 4096u

static int check_sz(size_t sz, const char *name, struct sbx_diag *diag)
{
    if (sz >= sizeof(size_t) && sz <= SBX_OPTS_SZ_MAX)
        return 0;
    return sbx_fail(diag, SBX_E_INVAL, "struct %s: sz is %zu; set it to sizeof(struct %s), e.g. "
                    "declare it with SBX_OPTS(%s, name, ...)", name, sz, name, name);
}

static bool all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

int sbx_opts_in(void *dst, size_t dst_size, const void *src, const char *name,
                struct sbx_diag *diag)
{
    memset(dst, 0, dst_size);
    if (!src)
        return 0;
    size_t sz;
    memcpy(&sz, src, sizeof sz);
    int rc = check_sz(sz, name, diag);
    if (rc)
        return rc;
    if (sz > dst_size && !all_zero((const unsigned char *)src + dst_size, sz - dst_size))
        return sbx_fail(diag, SBX_E_INVAL, "struct %s: sz %zu is larger than this libsnapbox's "
                        "%zu and sets fields it does not know; build against this snapbox.h or "
                        "upgrade libsnapbox", name, sz, dst_size);
    memcpy(dst, src, sz < dst_size ? sz : dst_size);
    memcpy(dst, &dst_size, sizeof dst_size); /* the copy is this library's full version */
    return 0;
}

int sbx_opts_out(void *dst, const void *src, size_t src_size, const char *name,
                 struct sbx_diag *diag)
{
    size_t sz;
    memcpy(&sz, dst, sizeof sz);
    int rc = check_sz(sz, name, diag);
    if (rc)
        return rc;
    /* sz itself stays the caller's. A newer caller's fields past src_size
     * are left as it set them (zero, with SBX_OPTS): this library has
     * nothing to say there. */
    size_t n = sz < src_size ? sz : src_size;
    memcpy((unsigned char *)dst + sizeof sz, (const unsigned char *)src + sizeof sz,
           n - sizeof sz);
    return 0;
}
