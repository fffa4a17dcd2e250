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

static void sync_dir_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

int sbx_snapshot_write(const struct sbx_snapshot *snap, const char *path, struct sbx_diag *diag)
{
    if (!snap || !path || !snap->complete)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_snapshot_write: a complete snapshot and a path are required");
    size_t tlen = strlen(path) + 16;
    char *tmp = malloc(tlen);
    if (!tmp)
        return sbx_fail(diag, SBX_E_NOMEM, "%s: out of memory", path);
    snprintf(tmp, tlen, "%s.tmp.XXXXXX", path);
    int rc = SBX_E_IO;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        sbx_fail(diag, rc, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        goto out_free;
    }
    /* mkstemp makes the file 0600; a snapshot is as readable as other build outputs. */
    if (fchmod(fd, 0644) < 0 || sbx_write_all(fd, snap->image, snap->size) < 0 || fsync(fd) < 0) {
        sbx_fail(diag, rc, "%s: writing %zu bytes failed: %s", path, snap->size, strerror(errno));
        close(fd);
        goto out_unlink;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        sbx_fail(diag, rc, "%s: cannot put the snapshot in place: %s", path, strerror(errno));
        goto out_unlink;
    }
    sync_dir_of(path);
    rc = 0;
    goto out_free;
out_unlink:
    unlink(tmp);
out_free:
    free(tmp);
    return rc;
}

/* Read the header and check it before anything else of the file is read. */
static int open_common(const char *path, const struct sbx_snapshot_open_opts *opts, bool whole,
                       struct sbx_snapshot **out, struct sbx_diag *diag)
{
    if (!path || !out)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_snapshot_open: path and out are required");
    enum sbx_version_policy policy = opts ? opts->policy : SBX_VERSION_EXACT;
    struct sbx_snapshot *snap = calloc(1, sizeof *snap);
    int rc = SBX_E_NOMEM, fd = -1;
    if (!snap || !(snap->path = strdup(path))) {
        sbx_fail(diag, rc, "%s: out of memory", path);
        goto err;
    }
    rc = SBX_E_IO;
    struct stat st;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
        sbx_fail(diag, rc, "%s: cannot open: %s", path, strerror(errno));
        goto err;
    }
    if (!S_ISREG(st.st_mode)) {
        sbx_fail(diag, rc, "%s: not a regular file", path);
        goto err;
    }
    uint64_t size = (uint64_t)st.st_size;
    size_t head = size < sizeof(struct sbx_snap_header) ? (size_t)size : sizeof(struct sbx_snap_header);
    size_t want = whole ? (size_t)size : head;
    if (size > SBX_MEM_MAX * 2 || !(snap->image = malloc(want ? want : 1))) {
        rc = sbx_fail(diag, SBX_E_LIMIT, "%s: %llu bytes is larger than any valid snapshot", path,
                      (unsigned long long)size);
        goto err;
    }
    if (sbx_pread_all(fd, snap->image, head, 0) < 0) {
        sbx_fail(diag, rc, "%s: read failed: %s", path, strerror(errno));
        goto err;
    }
    snap->size = head;
    snap->hdr = (const struct sbx_snap_header *)snap->image;
    rc = sbx_snap_check_prefix(snap->image, head, path, diag);
    if (rc || (rc = sbx_snap_check_header(snap->hdr, size, policy, path, diag)))
        goto err;
    if (whole) {
        rc = SBX_E_IO;
        if (sbx_pread_all(fd, snap->image + head, want - head, (off_t)head) < 0) {
            sbx_fail(diag, rc, "%s: read failed: %s", path, strerror(errno));
            goto err;
        }
        snap->size = want;
        snap->index = (const struct sbx_snap_chunk *)(snap->image + snap->hdr->index_offset);
        rc = sbx_snap_check_index(snap, diag);
        if (rc || (rc = sbx_snap_check_chunks(snap, diag)))
            goto err;
        snap->complete = true;
    }
    close(fd);
    *out = snap;
    return 0;
err:
    if (fd >= 0)
        close(fd);
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

void sbx_snapshot_info(const struct sbx_snapshot *snap, struct sbx_snapshot_info *out)
{
    const struct sbx_snap_header *h = snap->hdr;
    memset(out, 0, sizeof *out);
    out->format = h->prefix.format;
    out->host = sbx_snap_version(&h->host);
    out->guest = sbx_snap_version(&h->guest);
    out->guest_has_note = h->guest_has_note != 0;
    out->guest_elf_hash = h->guest_elf_xxh3;
    out->hc = h->compression == SBX_SNAP_LZ4HC;
    memcpy(out->cpu_vendor, h->cpu_vendor, sizeof h->cpu_vendor);
    out->mem_size = h->mem_size;
    out->file_size = h->file_size;
    out->nonzero_pages = h->nonzero_pages;
    out->stored_bytes = h->data_size;
    out->nchunks = h->nchunks;
    out->nfuncs = h->nfuncs;
}

int sbx_snapshot_function(const struct sbx_snapshot *snap, size_t i, struct sbx_func_info *out)
{
    if (i >= snap->hdr->nfuncs)
        return SBX_E_INVAL;
    const struct sbx_snap_func *f = &snap->hdr->funcs[i];
    *out = (struct sbx_func_info){ .name = f->name, .ret = f->ret, .nargs = f->nargs };
    for (size_t a = 0; a < f->nargs; a++)
        out->args[a] = f->args[a];
    return 0;
}

void sbx_snapshot_free(struct sbx_snapshot *snap)
{
    if (!snap)
        return;
    free(snap->image);
    free(snap->path);
    free(snap);
}
