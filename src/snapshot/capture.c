/* capture.c - freeze an idle sandbox into an encoded snapshot image. */
#include <lz4.h>
#include <lz4hc.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "snapshot.h"
#include "vcpu/vcpu.h"

static bool page_is_zero(const uint8_t *p)
{
    const uint64_t *w = (const uint64_t *)p;
    for (size_t i = 0; i < SBX_PAGE_SIZE / sizeof *w; i++)
        if (w[i])
            return false;
    return true;
}

/* Runs of non-zero pages, at most SBX_SNAP_CHUNK_MAX_PAGES long. */
static size_t find_chunks(const struct sbx_snap_input *in, struct sbx_snap_chunk *out, uint64_t *pages)
{
    size_t n = 0;
    uint64_t total = in->mem_size / SBX_PAGE_SIZE;
    *pages = 0;
    for (uint64_t p = 0; p < total; p++) {
        if (page_is_zero(in->mem + p * SBX_PAGE_SIZE))
            continue;
        (*pages)++;
        struct sbx_snap_chunk *last = n ? &out[n - 1] : NULL;
        if (last && last->gpa + last->raw_size == p * SBX_PAGE_SIZE &&
            last->raw_size < SBX_SNAP_CHUNK_MAX_PAGES * SBX_PAGE_SIZE)
            last->raw_size += SBX_PAGE_SIZE;
        else
            out[n++] = (struct sbx_snap_chunk){ .gpa = p * SBX_PAGE_SIZE, .raw_size = SBX_PAGE_SIZE };
    }
    return n;
}

static void fill_version(struct sbx_snap_version *out, const struct sbx_version *v)
{
    *out = (struct sbx_snap_version){ .major = v->major, .minor = v->minor, .patch = v->patch,
                                      .abi = v->abi };
    memcpy(out->string, v->string, sizeof out->string);
    out->string[sizeof out->string - 1] = '\0';
}

static void fill_header(struct sbx_snap_header *h, const struct sbx_snap_input *in)
{
    const struct sbx_vcpu_state *st = in->state;
    struct sbx_version host;
    sbx_host_version(&host);
    memcpy(h->prefix.magic, SBX_SNAP_MAGIC, SBX_SNAP_MAGIC_SIZE);
    h->prefix.format = SBX_SNAP_FORMAT;
    h->prefix.header_size = sizeof *h;
    fill_version(&h->host, &host);
    if (in->guest_has_note)
        fill_version(&h->guest, &in->guest_version);
    h->guest_has_note = in->guest_has_note;
    h->compression = in->hc ? SBX_SNAP_LZ4HC : SBX_SNAP_LZ4;
    h->guest_elf_xxh3 = in->guest_hash;
    memcpy(h->cpu_vendor, in->cpu->vendor, sizeof h->cpu_vendor);
    memcpy(h->cpuid_features, in->cpu->features, sizeof h->cpuid_features);
    h->xsave_size = SBX_SNAP_XSAVE_SIZE;
    h->xcr0 = st->xcrs.nr_xcrs ? st->xcrs.xcrs[0].value : 1;
    h->mem_size = in->mem_size;
    h->page_size = SBX_PAGE_SIZE;
    h->layout_abi = SBX_ABI_VERSION;
    h->regs = st->regs;
    h->sregs = st->sregs;
    h->xcrs = st->xcrs;
    memcpy(h->xsave, st->xsave, sizeof h->xsave);
    h->nfuncs = (uint32_t)in->nfuncs;
    for (size_t i = 0; i < in->nfuncs; i++) {
        struct sbx_snap_func *f = &h->funcs[i];
        memcpy(f->name, in->funcs[i].name, sizeof in->funcs[i].name);
        f->ret = (uint8_t)sbx_type_to_abi(in->funcs[i].ret_type);
        f->nargs = in->funcs[i].nargs;
        for (size_t a = 0; a < f->nargs; a++)
            f->args[a] = (uint8_t)sbx_type_to_abi(in->funcs[i].arg_types[a]);
    }
}

/* Compress each chunk into data[]; returns the bytes used. */
static size_t compress_chunks(const struct sbx_snap_input *in, struct sbx_snap_chunk *chunks,
                              size_t n, uint8_t *data, size_t cap, uint64_t data_offset)
{
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        struct sbx_snap_chunk *c = &chunks[i];
        const char *src = (const char *)in->mem + c->gpa;
        char *dst = (char *)data + used;
        int room = (int)(cap - used);
        int got = in->hc ? LZ4_compress_HC(src, dst, (int)c->raw_size, room, LZ4HC_CLEVEL_DEFAULT)
                     : LZ4_compress_default(src, dst, (int)c->raw_size, room);
        if (got <= 0 || (uint32_t)got >= c->raw_size) {
            memcpy(dst, src, c->raw_size); /* incompressible: store as is */
            c->flags = SBX_SNAP_CHUNK_RAW;
            got = (int)c->raw_size;
        }
        c->comp_size = (uint32_t)got;
        c->offset = data_offset + used;
        c->xxh3 = XXH3_64bits(dst, c->comp_size);
        used += c->comp_size;
    }
    return used;
}

int sbx_snap_encode(const struct sbx_snap_input *in, struct sbx_snapshot *snap, struct sbx_diag *diag)
{
    uint64_t max_chunks = in->mem_size / SBX_PAGE_SIZE, pages;
    struct sbx_snap_chunk *chunks = calloc(max_chunks, sizeof *chunks);
    if (!chunks)
        return sbx_fail(diag, SBX_E_NOMEM, "out of memory for the chunk index");
    size_t n = find_chunks(in, chunks, &pages);
    uint64_t index_size = n * sizeof *chunks;
    size_t cap = 0;
    for (size_t i = 0; i < n; i++)
        cap += (size_t)LZ4_compressBound((int)chunks[i].raw_size);
    snap->image = malloc(sizeof(struct sbx_snap_header) + index_size + cap);
    if (!snap->image) {
        free(chunks);
        return sbx_fail(diag, SBX_E_NOMEM, "out of memory for a snapshot image");
    }
    struct sbx_snap_header *h = (struct sbx_snap_header *)snap->image;
    memset(h, 0, sizeof *h);
    fill_header(h, in);
    h->index_offset = sizeof *h;
    h->data_offset = h->index_offset + index_size;
    h->data_size = compress_chunks(in, chunks, n, snap->image + h->data_offset, cap, h->data_offset);
    h->nchunks = (uint32_t)n;
    h->nonzero_pages = pages;
    memcpy(snap->image + h->index_offset, chunks, index_size);
    h->index_xxh3 = XXH3_64bits(chunks, index_size);
    h->file_size = h->data_offset + h->data_size;
    h->header_xxh3 = sbx_snap_header_hash(h);
    snap->size = h->file_size;
    snap->hdr = h;
    snap->index = (const struct sbx_snap_chunk *)(snap->image + h->index_offset);
    snap->complete = true;
    free(chunks);
    return 0;
}

/* The last call's arguments and results are the caller's data, not the
 * guest's state: a snapshot must not carry them to whoever restores it. */
static void scrub_call_data(struct sbx_sandbox *s)
{
    struct sbx_xchg *x = sbx_xchg(&s->vm);
    memset(x->hc_a, 0, sizeof x->hc_a);
    memset(x->args, 0, sizeof x->args);
    memset(&x->ret, 0, sizeof x->ret);
    x->call_index = x->nargs = 0;
    x->host_status = 0;
    memset(x->data, 0, s->xchg_dirty_hi);
}

int sbx_snapshot_take(struct sbx_sandbox *s, const struct sbx_snapshot_opts *opts,
                      struct sbx_snapshot **out, struct sbx_diag *diag)
{
    if (!s || !out)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_snapshot_take: sandbox and out are required");
    struct sbx_snapshot_opts o;
    int rc = sbx_opts_in(&o, sizeof o, opts, "sbx_snapshot_opts", diag);
    if (rc)
        return rc;
    if (s->poisoned)
        return sbx_fail(diag, SBX_E_POISONED, "cannot snapshot a poisoned sandbox");
    struct sbx_vcpu_state *st = malloc(sizeof *st);
    struct sbx_snapshot *snap = calloc(1, sizeof *snap);
    rc = SBX_E_NOMEM;
    if (!st || !snap || !(snap->path = strdup("(memory)"))) {
        sbx_fail(diag, rc, "out of memory for a snapshot");
        goto err;
    }
    struct sbx_cpu_facts cpu;
    scrub_call_data(s);
    rc = sbx_vcpu_save(&s->vm, st, diag);
    if (rc || (rc = sbx_vm_cpu_facts(&s->vm, &cpu, diag)))
        goto err;
    const struct sbx_guest_facts *g = sbx_sandbox_guest_facts(s);
    struct sbx_snap_input in = {
        .mem = s->vm.mem, .mem_size = s->vm.mem_size, .state = st, .cpu = &cpu,
        .guest_has_note = g->has_note, .guest_version = g->version, .guest_hash = g->hash,
        .hc = o.hc,
    };
    in.funcs = sbx_sandbox_functions(s, &in.nfuncs);
    rc = sbx_snap_encode(&in, snap, diag);
    if (rc || (rc = sbx_snap_decode_funcs(snap, diag)))
        goto err;
    free(st);
    *out = snap;
    return 0;
err:
    free(st);
    sbx_snapshot_free(snap);
    return rc;
}
