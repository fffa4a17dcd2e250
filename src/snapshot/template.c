/* template.c - a snapshot decoded once into sealed, read-only host memory. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "snapshot.h"

/* Merge the chunk index into runs of contiguous non-zero pages and mark them. */
static int build_runs(struct sbx_template *t, const struct sbx_snapshot *snap, struct sbx_diag *diag)
{
    const struct sbx_snap_header *h = snap->hdr;
    size_t words = (size_t)(h->mem_size / SBX_PAGE_SIZE + 63) / 64;
    t->runs = calloc(h->nchunks ? h->nchunks : 1, sizeof *t->runs);
    t->nonzero = calloc(words, sizeof *t->nonzero);
    if (!t->runs || !t->nonzero)
        return sbx_fail(diag, SBX_E_NOMEM, "%s: out of memory for the template's page map", t->path);
    for (uint32_t i = 0; i < h->nchunks; i++) {
        const struct sbx_snap_chunk *c = &snap->index[i];
        struct sbx_mem_run *last = t->nruns ? &t->runs[t->nruns - 1] : NULL;
        if (last && last->gpa + last->len == c->gpa)
            last->len += c->raw_size;
        else
            t->runs[t->nruns++] = (struct sbx_mem_run){ .gpa = c->gpa, .len = c->raw_size };
        for (uint64_t p = c->gpa / SBX_PAGE_SIZE; p < (c->gpa + c->raw_size) / SBX_PAGE_SIZE; p++)
            t->nonzero[p / 64] |= 1ull << (p % 64);
    }
    return 0;
}

/* Decode every chunk into a memfd, then seal it: from then on nobody, this
 * process included, can change the pages sandboxes copy or map. */
static int fill_memfd(struct sbx_template *t, const struct sbx_snapshot *snap, struct sbx_diag *diag)
{
    uint64_t size = snap->hdr->mem_size;
    t->memfd = memfd_create("snapbox-template", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (t->memfd < 0 || ftruncate(t->memfd, (off_t)size) < 0)
        return sbx_fail(diag, SBX_E_NOMEM, "%s: cannot create %llu bytes of template memory: %s",
                        t->path, (unsigned long long)size, strerror(errno));
    uint8_t *w = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, t->memfd, 0);
    if (w == MAP_FAILED)
        return sbx_fail(diag, SBX_E_NOMEM, "%s: cannot map template memory: %s", t->path,
                        strerror(errno));
    int rc = 0;
    for (uint32_t i = 0; i < snap->hdr->nchunks && !rc; i++)
        rc = sbx_snap_decode_chunk(snap, i, w + snap->index[i].gpa, diag);
    munmap(w, size);
    if (rc)
        return rc;
    if (fcntl(t->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
        return sbx_fail(diag, SBX_E_IO, "%s: cannot seal template memory: %s", t->path,
                        strerror(errno));
    void *ro = mmap(NULL, size, PROT_READ, MAP_SHARED, t->memfd, 0);
    if (ro == MAP_FAILED)
        return sbx_fail(diag, SBX_E_NOMEM, "%s: cannot map template memory read-only: %s",
                        t->path, strerror(errno));
    t->mem = ro;
    t->mem_size = size;
    /* Fault the non-zero pages into this process now, not during a restore. */
    for (uint32_t r = 0; r < t->nruns; r++)
        madvise((void *)(t->mem + t->runs[r].gpa), t->runs[r].len, MADV_POPULATE_READ);
    return 0;
}

int sbx_template_from_snapshot(const struct sbx_snapshot *snap, struct sbx_template **out,
                               struct sbx_diag *diag)
{
    if (!snap || !out)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_template_from_snapshot: snapshot and out are required");
    if (!snap->complete)
        return sbx_fail(diag, SBX_E_INVAL, "%s: only the header was read; open it with "
                        "sbx_snapshot_open to make a template", snap->path);
    int rc = sbx_snapshot_check_compat(snap, snap->policy, snap->require_note, diag);
    if (rc)
        return rc;
    struct sbx_template *t = calloc(1, sizeof *t);
    if (!t)
        return sbx_fail(diag, SBX_E_NOMEM, "%s: out of memory for a template", snap->path);
    t->memfd = -1;
    atomic_init(&t->refs, 1);
    rc = SBX_E_NOMEM;
    if (!(t->path = strdup(snap->path)) || !(t->hdr = malloc(sizeof *t->hdr))) {
        sbx_fail(diag, rc, "%s: out of memory for a template", snap->path);
        goto err;
    }
    memcpy(t->hdr, snap->meta, sizeof *t->hdr);
    t->vcpu = t->hdr->vcpu;
    rc = build_runs(t, snap, diag);
    if (rc || (rc = fill_memfd(t, snap, diag)))
        goto err;
    *out = t;
    return 0;
err:
    sbx_template_free(t);
    return rc;
}

int sbx_template_open(const char *path, const struct sbx_snapshot_open_opts *opts,
                      struct sbx_template **out, struct sbx_diag *diag)
{
    struct sbx_snapshot *snap = NULL;
    int rc = sbx_snapshot_open(path, opts, &snap, diag);
    if (rc)
        return rc;
    rc = sbx_template_from_snapshot(snap, out, diag);
    sbx_snapshot_free(snap);
    return rc;
}

uint64_t sbx_template_mem_size(const struct sbx_template *t) { return t->mem_size; }

void sbx_template_free(struct sbx_template *t) { sbx_template_release(t); }

void sbx_template_hold(const struct sbx_template *t)
{
    /* The count is the template's only mutable part besides the CPU cache. */
    atomic_fetch_add((atomic_int *)&t->refs, 1);
}

void sbx_template_release(const struct sbx_template *ct)
{
    struct sbx_template *t = (struct sbx_template *)ct;
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    if (t->mem)
        munmap((void *)t->mem, t->mem_size);
    if (t->memfd >= 0)
        close(t->memfd);
    free(t->runs);
    free(t->nonzero);
    free(t->hdr);
    free(t->path);
    free(t);
}
