/* file.c - snapshot files: atomic write, header-first read, info. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot.h"

int sbx_snapshot_write(const struct sbx_snapshot *snap, const char *path, struct sbx_diag *diag)
{
    if (!snap || !path || !snap->complete)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_snapshot_write: a complete snapshot and a path are required");
    struct sbx_atomic a;
    int rc = sbx_atomic_begin(&a, path, 0644, diag);
    if (rc)
        return rc;
    if (sbx_write_all(a.fd, snap->image, snap->size) < 0) {
        rc = sbx_fail(diag, SBX_E_IO, "%s: writing %zu bytes failed: %s", path, snap->size,
                      strerror(errno));
        sbx_atomic_abort(&a);
        return rc;
    }
    return sbx_atomic_commit(&a, diag);
}

/* Half of physical memory: a hostile header cannot make a restore ask for
 * more guest memory than the machine can give. */
static uint64_t default_max_mem(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t half = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page / 2
                                          : SBX_MEM_SIZE_MAX;
    return half < SBX_MEM_SIZE_MAX ? half : SBX_MEM_SIZE_MAX;
}

/* The caller's options (checked by the one copy helper) with defaults filled. */
static int resolve_opts(const struct sbx_snapshot_open_opts *in, struct sbx_snapshot_open_opts *o,
                        struct sbx_diag *diag)
{
    int rc = sbx_opts_in(o, sizeof *o, in, "sbx_snapshot_open_opts", diag);
    if (rc)
        return rc;
    if (!o->max_file_size)
        o->max_file_size = SBX_SNAP_DEFAULT_MAX_FILE;
    if (!o->max_chunks)
        o->max_chunks = SBX_SNAP_DEFAULT_MAX_CHUNKS;
    if (!o->max_mem_size)
        o->max_mem_size = default_max_mem();
    if (!o->max_nonzero_pages)
        o->max_nonzero_pages = o->max_mem_size / SBX_PAGE_SIZE;
    return 0;
}

static int check_limits(const struct sbx_snapshot *snap, const struct sbx_snapshot_open_opts *o,
                        struct sbx_diag *diag)
{
    const struct sbx_snap_header *h = snap->hdr;
    if (h->nchunks > o->max_chunks)
        return sbx_fail(diag, SBX_E_LIMIT, "%s: %u chunks, over the limit of %u (max_chunks)",
                        snap->path, h->nchunks, o->max_chunks);
    if (h->mem_size > o->max_mem_size)
        return sbx_fail(diag, SBX_E_LIMIT, "%s: %llu bytes of guest memory, over the limit of "
                        "%llu (max_mem_size)", snap->path, (unsigned long long)h->mem_size,
                        (unsigned long long)o->max_mem_size);
    if (h->nonzero_pages > o->max_nonzero_pages)
        return sbx_fail(diag, SBX_E_LIMIT, "%s: %llu stored pages, over the limit of %llu "
                        "(max_nonzero_pages)", snap->path, (unsigned long long)h->nonzero_pages,
                        (unsigned long long)o->max_nonzero_pages);
    return 0;
}

/* The fixed header's checks and the caller's limits, before anything else is read. */
static int check_head(struct sbx_snapshot *snap, uint64_t file_size,
                      const struct sbx_snapshot_open_opts *o, struct sbx_diag *diag)
{
    snap->hdr = (const struct sbx_snap_header *)snap->image;
    snap->policy = o->policy;
    snap->require_note = o->require_note;
    int rc = sbx_snap_check_prefix(snap->image, snap->size, snap->path, diag);
    if (rc || (rc = sbx_snap_check_header(snap->hdr, file_size, snap->path, diag)))
        return rc;
    return check_limits(snap, o, diag);
}

/* With the sections in snap->image: check and decode them into snap->meta. */
static int check_sections(struct sbx_snapshot *snap, struct sbx_diag *diag)
{
    const struct sbx_snap_header *h = snap->hdr;
    if (!(snap->meta = calloc(1, sizeof *snap->meta)))
        return sbx_fail(diag, SBX_E_NOMEM, "%s: out of memory", snap->path);
    snap->meta->h = *h;
    return sbx_snap_read_sections(snap->image + h->sections_offset, h, snap->meta, snap->path, diag);
}

/* With the whole file in snap->image: the index, then every chunk's checksum. */
static int check_rest(struct sbx_snapshot *snap, struct sbx_diag *diag)
{
    snap->index = (const struct sbx_snap_chunk *)(snap->image + snap->hdr->index_offset);
    int rc = sbx_snap_check_index(snap, diag);
    if (rc || (rc = sbx_snap_check_chunks(snap, diag)))
        return rc;
    snap->complete = true;
    return 0;
}

static int new_snapshot(const char *path, struct sbx_snapshot **out, struct sbx_diag *diag)
{
    struct sbx_snapshot *snap = calloc(1, sizeof *snap);
    if (!snap || !(snap->path = strdup(path))) {
        free(snap);
        return sbx_fail(diag, SBX_E_NOMEM, "%s: out of memory", path);
    }
    *out = snap;
    return 0;
}

/* Read [snap->size, want) of the file into the image. */
static int read_more(struct sbx_snapshot *snap, int fd, size_t want, struct sbx_diag *diag)
{
    if (sbx_pread_all(fd, snap->image + snap->size, want - snap->size, (off_t)snap->size) < 0)
        return sbx_fail(diag, SBX_E_IO, "%s: read failed: %s", snap->path, strerror(errno));
    snap->size = want;
    return 0;
}

/* The fixed header first; its checks decide whether the sections, and then
 * (whole) the rest, are read at all. */
static int read_checked(struct sbx_snapshot *snap, int fd, uint64_t size, bool whole,
                        const struct sbx_snapshot_open_opts *o, struct sbx_diag *diag)
{
    size_t head = size < sizeof(struct sbx_snap_header) ? (size_t)size : sizeof(struct sbx_snap_header);
    /* Memory for the rest only once the header vouches for the file's size. */
    if (!(snap->image = malloc(sizeof(struct sbx_snap_header))))
        return sbx_fail(diag, SBX_E_NOMEM, "%s: out of memory", snap->path);
    int rc = read_more(snap, fd, head, diag);
    if (rc || (rc = check_head(snap, size, o, diag)))
        return rc;
    size_t want = whole ? (size_t)size : (size_t)snap->hdr->index_offset;
    uint8_t *grown = want > head ? realloc(snap->image, want) : snap->image;
    if (!grown)
        return sbx_fail(diag, SBX_E_NOMEM, "%s: out of memory for %zu bytes", snap->path, want);
    snap->image = grown;
    snap->hdr = (const struct sbx_snap_header *)grown;
    if ((rc = read_more(snap, fd, want, diag)) || (rc = check_sections(snap, diag)) || !whole)
        return rc;
    return check_rest(snap, diag);
}

static int open_common(const char *path, const struct sbx_snapshot_open_opts *opts, bool whole,
                       struct sbx_snapshot **out, struct sbx_diag *diag)
{
    if (!path || !out)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_snapshot_open: path and out are required");
    struct sbx_snapshot_open_opts o;
    struct sbx_snapshot *snap = NULL;
    int fd = -1, rc = resolve_opts(opts, &o, diag);
    if (rc || (rc = new_snapshot(path, &snap, diag)))
        return rc;
    uint64_t size;
    rc = sbx_open_regular(path, o.max_file_size, &fd, &size, diag);
    if (rc) {
        fd = -1;
        goto err;
    }
    rc = read_checked(snap, fd, size, whole, &o, diag);
    if (rc)
        goto err;
    close(fd);
    *out = snap;
    return 0;
err:
    if (fd >= 0)
        close(fd);
    sbx_snapshot_free(snap);
    return rc;
}

int sbx_snapshot_from_memory(const void *buf, size_t len, const char *name,
                             const struct sbx_snapshot_open_opts *opts, struct sbx_snapshot **out,
                             struct sbx_diag *diag)
{
    struct sbx_snapshot_open_opts o;
    struct sbx_snapshot *snap = NULL;
    int rc = resolve_opts(opts, &o, diag);
    if (rc || (rc = new_snapshot(name, &snap, diag)))
        return rc;
    if (len > o.max_file_size)
        rc = sbx_fail(diag, SBX_E_LIMIT, "%s: %zu bytes, over the limit of %llu (max_file_size)",
                      name, len, (unsigned long long)o.max_file_size);
    else if (!(snap->image = malloc(len ? len : 1)))
        rc = sbx_fail(diag, SBX_E_NOMEM, "%s: out of memory for %zu bytes", name, len);
    if (rc)
        goto err;
    memcpy(snap->image, buf, len);
    snap->size = len;
    rc = check_head(snap, len, &o, diag);
    if (rc || (rc = check_sections(snap, diag)) || (rc = check_rest(snap, diag)))
        goto err;
    *out = snap;
    return 0;
err:
    sbx_snapshot_free(snap);
    return rc;
}

int sbx_snapshot_open_header(const char *path, const struct sbx_snapshot_open_opts *opts,
                             struct sbx_snapshot **out, struct sbx_diag *diag)
{
    return open_common(path, opts, false, out, diag);
}

int sbx_snapshot_open(const char *path, const struct sbx_snapshot_open_opts *opts,
                      struct sbx_snapshot **out, struct sbx_diag *diag)
{
    return open_common(path, opts, true, out, diag);
}

int sbx_snapshot_verify(const struct sbx_snapshot *snap, struct sbx_diag *diag)
{
    if (!snap->complete)
        return sbx_fail(diag, SBX_E_INVAL, "%s: only the header was read", snap->path);
    uint8_t *scratch = malloc(SBX_SNAP_CHUNK_MAX_PAGES * SBX_PAGE_SIZE);
    if (!scratch)
        return sbx_fail(diag, SBX_E_NOMEM, "out of memory");
    int rc = 0;
    for (uint32_t i = 0; i < snap->hdr->nchunks && rc == 0; i++)
        rc = sbx_snap_decode_chunk(snap, i, scratch, diag);
    free(scratch);
    return rc;
}

int sbx_snapshot_info(const struct sbx_snapshot *snap, struct sbx_snapshot_info *out,
                      struct sbx_diag *diag)
{
    if (!snap || !out)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_snapshot_info: snapshot and out are required");
    const struct sbx_snap_header *h = snap->hdr;
    struct sbx_snapshot_info i = { .sz = sizeof i };
    i.format = h->prefix.format;
    i.host = sbx_snap_version(&h->writer);
    i.guest = sbx_snap_version(&h->guest);
    i.guest_has_note = h->guest_has_note != 0;
    i.guest_elf_hash = h->guest_elf_xxh3;
    i.hc = h->compression == SBX_SNAP_LZ4HC;
    memcpy(i.cpu_vendor, h->cpu_vendor, sizeof h->cpu_vendor);
    i.mem_size = h->mem_size;
    i.file_size = h->file_size;
    i.nonzero_pages = h->nonzero_pages;
    i.stored_bytes = h->data_size;
    i.nchunks = h->nchunks;
    i.nfuncs = snap->meta->nfuncs;
    i.layout_abi = h->layout_abi;
    i.nmsrs = snap->meta->vcpu.nmsrs;
    i.ncpuid = snap->meta->vcpu.ncpuid;
    i.xsave_size = snap->meta->vcpu.xsave_size;
    return sbx_opts_out(out, &i, sizeof i, "sbx_snapshot_info", diag);
}

int sbx_snapshot_function(const struct sbx_snapshot *snap, size_t i, struct sbx_func_info *out,
                          struct sbx_diag *diag)
{
    if (!snap || !out || i >= snap->meta->nfuncs)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_snapshot_function: no function %zu (the "
                        "snapshot has %u)", i, snap ? snap->meta->nfuncs : 0);
    return sbx_func_info_out(&snap->meta->funcs[i], out, diag);
}

void sbx_snapshot_free(struct sbx_snapshot *snap)
{
    if (!snap)
        return;
    free(snap->meta);
    free(snap->image);
    free(snap->path);
    free(snap);
}

void sbx_snap_facts_of(const struct sbx_snap_meta *m, struct sbx_snap_facts *f)
{
    const struct sbx_snap_header *h = &m->h;
    *f = (struct sbx_snap_facts){ .format = h->prefix.format, .layout_abi = h->layout_abi,
                                  .writer = sbx_snap_version(&h->writer),
                                  .guest = sbx_snap_version(&h->guest),
                                  .guest_has_note = h->guest_has_note != 0,
                                  .xcr0 = sbx_vcpu_xcr0(&m->vcpu) };
    memcpy(f->cpu_vendor, h->cpu_vendor, sizeof f->cpu_vendor);
    memcpy(f->cpuid_features, h->cpuid_features, sizeof f->cpuid_features);
}

int sbx_snap_judge(const struct sbx_snap_facts *f, enum sbx_version_policy policy,
                   bool require_note, const char *what, struct sbx_diag *diag)
{
    if (f->format != SBX_SNAP_FORMAT)
        return sbx_fail(diag, SBX_E_SNAP_FORMAT, "%s: snapshot format %u; this build reads "
                        "format %u: recreate the snapshot (snapbox create)", what, f->format,
                        SBX_SNAP_FORMAT);
    if (f->layout_abi != SBX_ABI_VERSION)
        return sbx_fail(diag, SBX_E_SNAP_FORMAT, "%s: memory layout abi %u (written by snapbox "
                        "%s); this build uses abi %u: recreate the snapshot (snapbox create) "
                        "with a guest built for this snapbox", what, f->layout_abi,
                        f->writer.string, SBX_ABI_VERSION);
    if (!f->guest_has_note)
        return require_note ? sbx_fail(diag, SBX_E_NO_NOTE, "%s: the snapshot's guest has no "
                                       "snapbox version note, and one is required: recreate "
                                       "the snapshot (snapbox create) with a guest built for "
                                       "this snapbox", what) : 0;
    struct sbx_version host;
    sbx_host_version(&host);
    return sbx_version_verdict(&host, &f->guest, policy, SBX_VERSION_OF_SNAPSHOT, what, diag);
}

int sbx_snapshot_check_compat(const struct sbx_snapshot *snap, enum sbx_version_policy policy,
                              bool require_note, struct sbx_diag *diag)
{
    if (!snap)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_snapshot_check_compat: snapshot is required");
    struct sbx_snap_facts f;
    sbx_snap_facts_of(snap->meta, &f);
    return sbx_snap_judge(&f, policy, require_note, snap->path, diag);
}
