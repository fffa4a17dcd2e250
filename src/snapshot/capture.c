/* capture.c - freeze an idle sandbox into an encoded snapshot image. */
#include <lz4.h>
#include <lz4hc.h>
#include <stdlib.h>
#include <stdio.h>
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
        if (in->touched && !((in->touched[p / 64] >> (p % 64)) & 1))
            continue;
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
    snprintf(out->string, sizeof out->string, "%s", v->string); /* sizes are not tied */
}

static const struct kvm_cpuid_entry2 *find_cpuid(const struct sbx_vcpu_state *st, uint32_t fn)
{
    for (uint32_t i = 0; i < st->ncpuid; i++)
        if (st->cpuid[i].function == fn && st->cpuid[i].index == 0)
            return &st->cpuid[i];
    return NULL;
}

/* The vendor and feature words the CPU check compares: from the CPUID the
 * guest saw when the state has it, else what KVM offered (the guest's CPUID
 * is set from that offer). */
static void fill_cpu(struct sbx_snap_header *h, const struct sbx_snap_input *in)
{
    const struct sbx_vcpu_state *st = in->state;
    const struct kvm_cpuid_entry2 *l0 = find_cpuid(st, 0), *l1 = find_cpuid(st, 1);
    const struct kvm_cpuid_entry2 *l7 = find_cpuid(st, 7);
    memcpy(h->cpu_vendor, in->cpu->vendor, sizeof h->cpu_vendor);
    memcpy(h->cpuid_features, in->cpu->features, sizeof h->cpuid_features);
    if (l0) {
        memcpy(h->cpu_vendor, &l0->ebx, 4);
        memcpy(h->cpu_vendor + 4, &l0->edx, 4);
        memcpy(h->cpu_vendor + 8, &l0->ecx, 4);
    }
    if (l1)
        h->cpuid_features[0] = l1->ecx, h->cpuid_features[1] = l1->edx;
    if (l7)
        h->cpuid_features[2] = l7->ebx, h->cpuid_features[3] = l7->ecx;
}

static void fill_header(struct sbx_snap_header *h, const struct sbx_snap_input *in)
{
    struct sbx_version writer;
    sbx_host_version(&writer);
    memcpy(h->prefix.magic, SBX_SNAP_MAGIC, SBX_SNAP_MAGIC_SIZE);
    h->prefix.format = SBX_SNAP_FORMAT;
    h->prefix.header_size = sizeof *h;
    fill_version(&h->writer, &writer);
    if (in->guest_has_note)
        fill_version(&h->guest, &in->guest_version);
    h->guest_has_note = in->guest_has_note;
    h->compression = in->hc ? SBX_SNAP_LZ4HC : SBX_SNAP_LZ4;
    h->guest_elf_xxh3 = in->guest_hash;
    fill_cpu(h, in);
    h->mem_size = in->mem_size;
    h->page_size = SBX_PAGE_SIZE;
    h->layout_abi = SBX_ABI_VERSION;
}

static uint64_t sections_size(const struct sbx_snap_input *in)
{
    return sbx_vcpu_record_size(in->state) +
           sbx_snap_section_size(sbx_snap_funcs_size(in->funcs, in->nfuncs));
}

/* The sections region at buf (sections_size(in) bytes, allocated by the
 * caller), checksums set. */
static void fill_sections(struct sbx_snap_header *h, uint8_t *buf, const struct sbx_snap_input *in)
{
    struct sbx_snap_writer w = { .buf = buf };
    sbx_vcpu_record_put(&w, in->state);
    sbx_snap_put_funcs(&w, in->funcs, in->nfuncs);
    sbx_snap_seal_sections(buf, w.len);
    h->sections_offset = sizeof *h;
    h->sections_size = w.len;
    h->nsections = w.count;
    h->sections_xxh3 = XXH3_64bits(buf, w.len);
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

static int check_input(const struct sbx_snap_input *in, struct sbx_diag *diag)
{
    int rc = sbx_vcpu_record_check(in->state, diag);
    if (rc)
        return rc;
    if (in->nfuncs > SBX_MAX_FUNCS)
        return sbx_fail(diag, SBX_E_INVAL, "%zu functions, at most %u", in->nfuncs, SBX_MAX_FUNCS);
    return sbx_check_mem_size(in->mem_size, diag);
}

/* Header, index and checksums once the chunks are compressed. */
static void finish(struct sbx_snapshot *snap, struct sbx_snap_header *h,
                   const struct sbx_snap_chunk *chunks, size_t n, uint64_t pages)
{
    uint64_t index_size = n * sizeof *chunks;
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
}

static int alloc_image(struct sbx_snapshot *snap, const struct sbx_snap_input *in,
                       const struct sbx_snap_chunk *chunks, size_t n, size_t *cap,
                       struct sbx_diag *diag)
{
    *cap = 0;
    for (size_t i = 0; i < n; i++)
        *cap += (size_t)LZ4_compressBound((int)chunks[i].raw_size);
    size_t head = sizeof(struct sbx_snap_header) + sections_size(in);
    snap->image = calloc(1, head + n * sizeof *chunks + *cap);
    snap->meta = malloc(sizeof *snap->meta);
    if (!snap->image || !snap->meta)
        return sbx_fail(diag, SBX_E_NOMEM, "out of memory for a snapshot image");
    return 0;
}

/* The encoded image is decoded again into snap->meta by the reader's own
 * code, so a taken snapshot and an opened one hold the same thing. */
int sbx_snap_encode(const struct sbx_snap_input *in, struct sbx_snapshot *snap, struct sbx_diag *diag)
{
    int rc = check_input(in, diag);
    if (rc)
        return rc;
    uint64_t max_chunks = in->mem_size / SBX_PAGE_SIZE, pages;
    struct sbx_snap_chunk *chunks = calloc(max_chunks, sizeof *chunks);
    if (!chunks)
        return sbx_fail(diag, SBX_E_NOMEM, "out of memory for the chunk index");
    size_t n = find_chunks(in, chunks, &pages), cap;
    if ((rc = alloc_image(snap, in, chunks, n, &cap, diag)))
        goto out;
    struct sbx_snap_header *h = (struct sbx_snap_header *)snap->image;
    fill_header(h, in);
    fill_sections(h, snap->image + sizeof *h, in);
    h->index_offset = h->sections_offset + h->sections_size;
    h->data_offset = h->index_offset + n * sizeof *chunks;
    h->data_size = compress_chunks(in, chunks, n, snap->image + h->data_offset, cap, h->data_offset);
    finish(snap, h, chunks, n, pages);
    memset(snap->meta, 0, sizeof *snap->meta);
    snap->meta->h = *h;
    rc = sbx_snap_read_sections(snap->image + h->sections_offset, h, snap->meta, snap->path, diag);
out:
    free(chunks);
    return rc;
}

/* The last call's arguments and results are the caller's data, not the
 * guest's state: a snapshot must not carry them to whoever restores it. */
static void scrub_call_data(struct sbx_sandbox *s)
{
    struct sbx_xchg *x = sbx_xchg(&s->vm);
    memset(x->hc_a, 0, sizeof x->hc_a);
    memset(x->args, 0, sizeof x->args);
    memset(&x->ret, 0, sizeof x->ret);
    x->call_index = x->nargs = x->restored = 0;
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
    if (atomic_load(&s->in_call))
        return sbx_fail(diag, SBX_E_BUSY, "cannot snapshot a sandbox during its call");
    struct sbx_vcpu_state *st = malloc(sizeof *st);
    struct sbx_snapshot *snap = calloc(1, sizeof *snap);
    uint64_t *touched = NULL;
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
    /* Capture costs what the guest touched, not its memory size. */
    touched = sbx_sandbox_touched_pages(s);
    const struct sbx_guest_facts *g = sbx_sandbox_guest_facts(s);
    struct sbx_snap_input in = {
        .mem = s->vm.mem, .mem_size = s->vm.mem_size, .state = st, .cpu = &cpu,
        .guest_has_note = g->has_note, .guest_version = g->version, .guest_hash = g->hash,
        .hc = o.hc, .touched = touched,
    };
    in.funcs = sbx_sandbox_functions(s, &in.nfuncs);
    rc = sbx_snap_encode(&in, snap, diag);
    if (rc)
        goto err;
    /* The guest passed the caller's load policy on this host already. */
    snap->policy = SBX_VERSION_ABI;
    free(touched);
    free(st);
    *out = snap;
    return 0;
err:
    free(touched);
    free(st);
    sbx_snapshot_free(snap);
    return rc;
}
