/* sections.c - the length-prefixed sections after the fixed header, and the
 * FUNCTIONS section. Lists live here, so none of them has a cap in the format;
 * this build's limits are checked when a file is read. */
#include <string.h>
#include <xxhash.h>

#include "snapshot.h"

static uint64_t pad8(uint64_t n) { return (n + 7) & ~7ull; }

uint64_t sbx_snap_section_size(uint64_t len)
{
    return sizeof(struct sbx_snap_section) + pad8(len);
}

uint8_t *sbx_snap_put_section(struct sbx_snap_writer *w, uint32_t type, uint64_t len)
{
    struct sbx_snap_section s = { .type = type, .length = len };
    uint8_t *at = w->buf + w->len;
    memcpy(at, &s, sizeof s);
    memset(at + sizeof s, 0, pad8(len));
    w->len += sbx_snap_section_size(len);
    w->count++;
    return at + sizeof s;
}

void sbx_snap_seal_sections(uint8_t *buf, uint64_t size)
{
    uint64_t off = 0;
    struct sbx_snap_section s;
    while (size - off >= sizeof s) {
        memcpy(&s, buf + off, sizeof s);
        if (s.length > size - off - sizeof s)
            return;
        s.xxh3 = XXH3_64bits(buf + off + sizeof s, s.length);
        memcpy(buf + off, &s, sizeof s);
        if (pad8(s.length) > size - off - sizeof s)
            return;
        off += sbx_snap_section_size(s.length);
    }
}

uint64_t sbx_snap_funcs_size(const struct sbx_func *funcs, size_t n)
{
    uint64_t len = 4;
    for (size_t i = 0; i < n; i++)
        len += SBX_SNAP_FUNC_FIXED + strnlen(funcs[i].name, SBX_MAX_NAME) + funcs[i].nargs;
    return len;
}

void sbx_snap_put_funcs(struct sbx_snap_writer *w, const struct sbx_func *funcs, size_t n)
{
    uint8_t *p = sbx_snap_put_section(w, SBX_SNAP_SEC_FUNCTIONS, sbx_snap_funcs_size(funcs, n));
    uint32_t count = (uint32_t)n;
    memcpy(p, &count, 4);
    p += 4;
    for (size_t i = 0; i < n; i++) {
        uint16_t name_len = (uint16_t)strnlen(funcs[i].name, SBX_MAX_NAME);
        memcpy(p, &name_len, 2);
        memcpy(p + 2, funcs[i].name, name_len);
        p += 2 + name_len;
        *p++ = funcs[i].ret;
        *p++ = funcs[i].nargs;
        memcpy(p, funcs[i].args, funcs[i].nargs);
        p += funcs[i].nargs;
    }
}

/* One function record at p[*off, len): bounds first, then the one rule. */
static int get_func(const uint8_t *p, uint64_t len, uint64_t *off, struct sbx_func *f, uint32_t i,
                    const char *path, struct sbx_diag *diag)
{
    uint16_t name_len;
    if (len - *off < 2)
        goto truncated;
    memcpy(&name_len, p + *off, 2);
    if (len - *off - 2 < (uint64_t)name_len + 2)
        goto truncated;
    const uint8_t *name = p + *off + 2, *sig = name + name_len;
    if (len - *off - 4 - name_len < sig[1])
        goto truncated;
    if (!sbx_valid_func_name((const char *)name, name_len) ||
        !sbx_valid_signature(sig[0], sig[1], sig + 2))
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: function %u has an invalid name or "
                        "signature", path, i);
    memset(f, 0, sizeof *f);
    memcpy(f->name, name, name_len);
    f->ret = sig[0];
    f->nargs = sig[1];
    memcpy(f->args, sig + 2, sig[1]);
    *off += 4 + name_len + sig[1];
    return 0;
truncated:
    return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: function %u runs past the FUNCTIONS section",
                    path, i);
}

static int get_funcs(const uint8_t *p, uint64_t len, struct sbx_snap_meta *m, const char *path,
                     struct sbx_diag *diag)
{
    uint32_t count;
    if (len < 4)
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: FUNCTIONS section too short", path);
    memcpy(&count, p, 4);
    if (count > SBX_MAX_FUNCS)
        return sbx_fail(diag, SBX_E_LIMIT, "%s: %u functions; this build holds at most %u",
                        path, count, SBX_MAX_FUNCS);
    uint64_t off = 4;
    for (uint32_t i = 0; i < count; i++) {
        int rc = get_func(p, len, &off, &m->funcs[i], i, path, diag);
        if (rc)
            return rc;
        /* as at registration: a name names one function */
        for (uint32_t j = 0; j < i; j++)
            if (!strcmp(m->funcs[j].name, m->funcs[i].name))
                return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: function %u repeats the name "
                                "'%s'", path, i, m->funcs[i].name);
    }
    if (off != len)
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: FUNCTIONS section has %llu bytes after "
                        "its %u functions", path, (unsigned long long)(len - off), count);
    m->nfuncs = count;
    return 0;
}

/* The section header at buf[off, size), with its payload inside the region,
 * zero padding and a matching checksum. */
static int get_header(const uint8_t *buf, uint64_t size, uint64_t off, uint32_t i,
                      struct sbx_snap_section *s, const char *path, struct sbx_diag *diag)
{
    if (size - off < sizeof *s)
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: section %u starts past the sections "
                        "region", path, i);
    memcpy(s, buf + off, sizeof *s);
    uint64_t room = size - off - sizeof *s;
    if (s->length > room || pad8(s->length) > room || (s->flags & ~SBX_SNAP_SEC_OPTIONAL))
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: section %u (type %u): length %llu or "
                        "flags 0x%x out of range", path, i, s->type,
                        (unsigned long long)s->length, s->flags);
    const uint8_t *payload = buf + off + sizeof *s;
    for (uint64_t b = s->length; b < pad8(s->length); b++)
        if (payload[b])
            return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: section %u: padding not zero", path, i);
    if (XXH3_64bits(payload, s->length) != s->xxh3)
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: section %u (type %u): checksum mismatch",
                        path, i, s->type);
    return 0;
}

static int get_section(const struct sbx_snap_section *s, const uint8_t *payload,
                       struct sbx_snap_meta *m, const char *path, struct sbx_diag *diag)
{
    if (s->type == SBX_SNAP_SEC_FUNCTIONS)
        return get_funcs(payload, s->length, m, path, diag);
    return sbx_vcpu_record_get(s->type, payload, s->length, &m->vcpu, path, diag);
}

#define REQUIRED ((1u << SBX_SNAP_SEC_VCPU) | (1u << SBX_SNAP_SEC_MSRS) | \
                  (1u << SBX_SNAP_SEC_CPUID) | (1u << SBX_SNAP_SEC_XSAVE) | \
                  (1u << SBX_SNAP_SEC_FUNCTIONS))

int sbx_snap_read_sections(const uint8_t *buf, const struct sbx_snap_header *h,
                           struct sbx_snap_meta *m, const char *path, struct sbx_diag *diag)
{
    uint64_t size = h->sections_size, off = 0;
    if (XXH3_64bits(buf, size) != h->sections_xxh3)
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: sections checksum mismatch", path);
    uint32_t seen = 0;
    for (uint32_t i = 0; i < h->nsections; i++) {
        struct sbx_snap_section s;
        int rc = get_header(buf, size, off, i, &s, path, diag);
        if (rc)
            return rc;
        bool known = s.type >= SBX_SNAP_SEC_VCPU && s.type <= SBX_SNAP_SEC_FUNCTIONS;
        if (!known && !(s.flags & SBX_SNAP_SEC_OPTIONAL))
            return sbx_fail(diag, SBX_E_SNAP_FORMAT, "%s: section %u has type %u, which this "
                            "build does not know: recreate the snapshot", path, i, s.type);
        if (known && (seen & (1u << s.type)))
            return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: section type %u repeated", path, s.type);
        if (known && (rc = get_section(&s, buf + off + sizeof s, m, path, diag)))
            return rc;
        seen |= known ? 1u << s.type : 0;
        off += sbx_snap_section_size(s.length);
    }
    if (off != size || seen != REQUIRED)
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: sections end at %llu of %llu bytes, or a "
                        "required section (vCPU, MSRs, CPUID, XSAVE, functions) is missing",
                        path, (unsigned long long)off, (unsigned long long)size);
    return 0;
}
