/* parse.c - every check a snapshot passes before anything trusts it. Works on
 * bytes in memory, so the fuzzers can drive it without files or KVM. */
#include <lz4.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "snapshot.h"

uint64_t sbx_snap_header_hash(const struct sbx_snap_header *h)
{
    struct sbx_snap_header copy;
    memcpy(&copy, h, sizeof copy);
    copy.header_xxh3 = 0;
    return XXH3_64bits(&copy, sizeof copy);
}

int sbx_snap_check_prefix(const uint8_t *buf, size_t len, const char *path, struct sbx_diag *diag)
{
    struct sbx_snap_prefix p;
    if (len < sizeof p)
        return sbx_fail(diag, len == 0 ? SBX_E_SNAP_FORMAT : SBX_E_SNAP_CORRUPT,
                        "%s: %zu bytes, too short for a snapshot header", path, len);
    memcpy(&p, buf, sizeof p);
    if (memcmp(p.magic, SBX_SNAP_MAGIC, SBX_SNAP_MAGIC_SIZE) != 0)
        return sbx_fail(diag, SBX_E_SNAP_FORMAT, "%s: not a snapbox snapshot (bad magic)", path);
    if (p.format != SBX_SNAP_FORMAT)
        return sbx_fail(diag, SBX_E_SNAP_FORMAT,
                        "%s: snapshot format %u; this build reads format %u: %s", path, p.format,
                        SBX_SNAP_FORMAT, p.format < SBX_SNAP_FORMAT
                            ? "recreate the snapshot (snapbox create)"
                            : "read it with a newer snapbox, or recreate the snapshot with this one");
    if (p.header_size != sizeof(struct sbx_snap_header))
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: header_size %u, format %u has %zu", path,
                        p.header_size, SBX_SNAP_FORMAT, sizeof(struct sbx_snap_header));
    if (len < p.header_size)
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: truncated: %zu bytes, the header needs %u",
                        path, len, p.header_size);
    return 0;
}

static int check_version_string(const struct sbx_snap_version *v, const char *which,
                                const char *path, struct sbx_diag *diag)
{
    if (!memchr(v->string, '\0', sizeof v->string))
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: %s version string is not NUL-terminated",
                        path, which);
    return 0;
}

struct sbx_version sbx_snap_version(const struct sbx_snap_version *v)
{
    struct sbx_version out = { .major = v->major, .minor = v->minor, .patch = v->patch, .abi = v->abi };
    memcpy(out.string, v->string, sizeof out.string);
    return out;
}

/* Header, sections, index and data tile the file exactly, in that order. */
static int check_regions(const struct sbx_snap_header *h, uint64_t size, const char *path,
                         struct sbx_diag *diag)
{
    uint64_t index_size = (uint64_t)h->nchunks * sizeof(struct sbx_snap_chunk);
    if (h->sections_offset != sizeof *h || h->sections_size > SBX_SNAP_SECTIONS_MAX ||
        h->sections_size % 8 || h->nsections > SBX_SNAP_MAX_SECTIONS ||
        h->index_offset != h->sections_offset + h->sections_size ||
        h->data_offset != h->index_offset + index_size || h->data_offset > size ||
        h->data_size != size - h->data_offset)
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT,
                        "%s: regions do not tile the file: %u sections at %llu size %llu, index "
                        "at %llu (%u chunks), data at %llu size %llu, file %llu bytes",
                        path, h->nsections, (unsigned long long)h->sections_offset,
                        (unsigned long long)h->sections_size, (unsigned long long)h->index_offset,
                        h->nchunks, (unsigned long long)h->data_offset,
                        (unsigned long long)h->data_size, (unsigned long long)size);
    return 0;
}

/* The memory size follows the sandbox's one rule (sbx_check_mem_size); in a
 * file a size outside it means corruption, not a caller's limit. */
static int check_mem_size(const struct sbx_snap_header *h, const char *path, struct sbx_diag *diag)
{
    if (sbx_check_mem_size(h->mem_size, diag) == 0)
        return 0;
    if (diag)
        diag->code = SBX_E_SNAP_CORRUPT;
    sbx_diag_prefix(diag, "%s: mem_size", path);
    return SBX_E_SNAP_CORRUPT;
}

static int check_counts(const struct sbx_snap_header *h, const char *path, struct sbx_diag *diag)
{
    bool reserved = h->reserved0 != 0;
    for (size_t i = 0; i < sizeof h->reserved / sizeof h->reserved[0]; i++)
        reserved |= h->reserved[i] != 0;
    if (h->nchunks > h->mem_size / SBX_PAGE_SIZE || h->nonzero_pages > h->mem_size / SBX_PAGE_SIZE ||
        h->guest_has_note > 1 || reserved)
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: nchunks %u, nonzero_pages %llu, "
                        "guest_has_note %u or reserved fields out of range", path, h->nchunks,
                        (unsigned long long)h->nonzero_pages, h->guest_has_note);
    if (h->compression != SBX_SNAP_LZ4 && h->compression != SBX_SNAP_LZ4HC)
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: unknown compression %u", path, h->compression);
    return 0;
}

/* Structure only: the versions and the layout ABI are information here, and
 * sbx_snapshot_check_compat judges them, so any file of this format can be
 * described. */
int sbx_snap_check_header(const struct sbx_snap_header *h, uint64_t actual_size, const char *path,
                          struct sbx_diag *diag)
{
    if (sbx_snap_header_hash(h) != h->header_xxh3)
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: header checksum mismatch (header_xxh3)", path);
    int rc = check_version_string(&h->writer, "writer", path, diag);
    if (rc || (rc = check_version_string(&h->guest, "guest", path, diag)))
        return rc;
    if (h->page_size != SBX_PAGE_SIZE)
        return sbx_fail(diag, SBX_E_SNAP_FORMAT, "%s: page size %u; this build uses %llu", path,
                        h->page_size, SBX_PAGE_SIZE);
    if ((rc = check_mem_size(h, path, diag)))
        return rc;
    if (h->file_size != actual_size)
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: file is %llu bytes, header says file_size %llu "
                        "(truncated or extended)", path, (unsigned long long)actual_size,
                        (unsigned long long)h->file_size);
    if ((rc = check_counts(h, path, diag)))
        return rc;
    return check_regions(h, actual_size, path, diag);
}

int sbx_snap_check_index(const struct sbx_snapshot *snap, struct sbx_diag *diag)
{
    const struct sbx_snap_header *h = snap->hdr;
    uint64_t index_size = (uint64_t)h->nchunks * sizeof(struct sbx_snap_chunk);
    if (XXH3_64bits(snap->image + h->index_offset, index_size) != h->index_xxh3)
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: chunk index checksum mismatch", snap->path);
    uint64_t next_gpa = 0, next_offset = h->data_offset, pages = 0;
    for (uint32_t i = 0; i < h->nchunks; i++) {
        const struct sbx_snap_chunk *c = &snap->index[i];
        bool ok = c->gpa % SBX_PAGE_SIZE == 0 && c->raw_size != 0 &&
                  c->raw_size % SBX_PAGE_SIZE == 0 &&
                  c->raw_size <= SBX_SNAP_CHUNK_MAX_PAGES * SBX_PAGE_SIZE && c->gpa >= next_gpa &&
                  c->gpa <= h->mem_size && c->raw_size <= h->mem_size - c->gpa;
        if (!ok)
            return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: chunk %u: memory range gpa 0x%llx size %u "
                            "is unaligned, overlapping or outside the %llu-byte memory",
                            snap->path, i, (unsigned long long)c->gpa, c->raw_size,
                            (unsigned long long)h->mem_size);
        uint32_t bound = (c->flags & SBX_SNAP_CHUNK_RAW) ? c->raw_size
                                                          : (uint32_t)LZ4_compressBound((int)c->raw_size);
        if (c->offset != next_offset || c->comp_size == 0 || c->comp_size > bound ||
            c->comp_size > snap->size - c->offset || (c->flags & ~SBX_SNAP_CHUNK_RAW) ||
            ((c->flags & SBX_SNAP_CHUNK_RAW) && c->comp_size != c->raw_size))
            return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: chunk %u: stored range offset %llu size %u "
                            "(flags 0x%x) is out of order, oversized or past the end", snap->path, i,
                            (unsigned long long)c->offset, c->comp_size, c->flags);
        next_gpa = c->gpa + c->raw_size;
        next_offset = c->offset + c->comp_size;
        pages += c->raw_size / SBX_PAGE_SIZE;
    }
    if (next_offset != snap->size || pages != h->nonzero_pages)
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: chunks cover %llu pages and end at %llu; header "
                        "says %llu pages, file ends at %zu", snap->path, (unsigned long long)pages,
                        (unsigned long long)next_offset, (unsigned long long)h->nonzero_pages,
                        snap->size);
    return 0;
}

int sbx_snap_check_chunks(const struct sbx_snapshot *snap, struct sbx_diag *diag)
{
    for (uint32_t i = 0; i < snap->hdr->nchunks; i++) {
        const struct sbx_snap_chunk *c = &snap->index[i];
        if (XXH3_64bits(snap->image + c->offset, c->comp_size) != c->xxh3)
            return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: chunk %u (gpa 0x%llx): checksum mismatch",
                            snap->path, i, (unsigned long long)c->gpa);
    }
    return 0;
}

int sbx_snap_decode_chunk(const struct sbx_snapshot *snap, uint32_t i, uint8_t *dst,
                          struct sbx_diag *diag)
{
    const struct sbx_snap_chunk *c = &snap->index[i];
    const char *src = (const char *)snap->image + c->offset;
    if (c->flags & SBX_SNAP_CHUNK_RAW) {
        memcpy(dst, src, c->raw_size);
        return 0;
    }
    int n = LZ4_decompress_safe(src, (char *)dst, (int)c->comp_size, (int)c->raw_size);
    if (n != (int)c->raw_size)
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: chunk %u (gpa 0x%llx) decompresses to %d "
                        "bytes, expected %u", snap->path, i, (unsigned long long)c->gpa, n,
                        c->raw_size);
    return 0;
}
