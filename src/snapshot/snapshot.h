/* snapshot.h - internal: the snapshot handle and the format checks. */
#ifndef SBX_SNAPSHOT_H
#define SBX_SNAPSHOT_H

#include <stdatomic.h>

#include "format.h"
#include "internal.h"
#include "vcpu/vcpu.h"

struct sbx_snapshot {
    char *path;             /* file it came from, or "(memory)" */
    uint8_t *image;         /* the file's bytes: header only, or the whole file */
    size_t size;
    bool complete;          /* index and chunks present and verified */
    const struct sbx_snap_header *hdr;  /* inside image */
    const struct sbx_snap_chunk *index; /* inside image, when complete */
    struct sbx_func *funcs; /* hdr's functions in API types, for sbx_snapshot_function */
};

/* A run of contiguous non-zero pages. */
struct sbx_mem_run {
    uint64_t gpa, len;
};

struct sbx_template {
    char *path;
    int memfd;                  /* sealed: size and contents fixed */
    const uint8_t *mem;         /* read-only shared mapping of memfd */
    uint64_t mem_size;
    struct sbx_snap_header *hdr; /* vCPU state, functions, versions, CPU facts */
    struct sbx_vcpu_state vcpu; /* hdr's vCPU state, ready for every reset */
    struct sbx_mem_run *runs;
    uint32_t nruns;
    uint64_t *nonzero;          /* bitmap: pages the template stores */
    atomic_int cpu_checked;     /* set once a sandbox passed the CPU check */
    atomic_int refs;            /* the caller's, plus one per sandbox restored from it */
};

static inline bool sbx_template_page_stored(const struct sbx_template *t, uint64_t page)
{
    return (t->nonzero[page / 64] >> (page % 64)) & 1;
}

/* What a snapshot freezes; plain data, so it can be encoded without KVM. */
struct sbx_snap_input {
    const uint8_t *mem;
    uint64_t mem_size;
    const struct sbx_vcpu_state *state;
    const struct sbx_cpu_facts *cpu;
    const struct sbx_func *funcs;
    size_t nfuncs;
    bool guest_has_note;
    struct sbx_version guest_version;
    uint64_t guest_hash;
    bool hc;
};

/* template.c: a sandbox restored from t keeps it alive until destroyed. */
void sbx_template_hold(const struct sbx_template *t);

/* file.c: the checks of sbx_snapshot_open on a copy of buf[0, len), named
 * name in messages (fuzzers and tests feed untrusted bytes through it). */
int sbx_snapshot_from_memory(const void *buf, size_t len, const char *name,
                             const struct sbx_snapshot_open_opts *opts, struct sbx_snapshot **out,
                             struct sbx_diag *diag);

/* capture.c: encode in into snap's image (header, index, compressed chunks). */
int sbx_snap_encode(const struct sbx_snap_input *in, struct sbx_snapshot *snap, struct sbx_diag *diag);

/* parse.c: checks on bytes already in memory; each names path and the field. */
int sbx_snap_check_prefix(const uint8_t *buf, size_t len, const char *path, struct sbx_diag *diag);
int sbx_snap_check_header(const struct sbx_snap_header *h, uint64_t actual_size,
                          enum sbx_version_policy policy, const char *path, struct sbx_diag *diag);
int sbx_snap_check_index(const struct sbx_snapshot *snap, struct sbx_diag *diag);
int sbx_snap_check_chunks(const struct sbx_snapshot *snap, struct sbx_diag *diag);
/* Decompress chunk i into dst (raw_size bytes), checking its size. */
int sbx_snap_decode_chunk(const struct sbx_snapshot *snap, uint32_t i, uint8_t *dst,
                          struct sbx_diag *diag);
/* restore.c: shared by restore from a file and from a template. */
int sbx_snap_check_cpu(const struct sbx_snap_header *h, const char *path, const struct sbx_vm *vm,
                       struct sbx_diag *diag);
/* The header's vCPU state, as sbx_vcpu_load takes it. */
void sbx_snap_vcpu_state(const struct sbx_snap_header *h, struct sbx_vcpu_state *st);
/* Load the header's vCPU state into the VM and its function table and guest
 * facts into the sandbox. */
int sbx_snap_apply_header(struct sbx_sandbox *s, const struct sbx_snap_header *h,
                          struct sbx_diag *diag);
uint64_t sbx_snap_header_hash(const struct sbx_snap_header *h);
struct sbx_version sbx_snap_version(const struct sbx_snap_version *v);
/* h's function table (checked by sbx_snap_check_header) in API types. */
void sbx_snap_funcs_decode(const struct sbx_snap_header *h, struct sbx_func *out);
/* snap->funcs from snap->hdr. */
int sbx_snap_decode_funcs(struct sbx_snapshot *snap, struct sbx_diag *diag);

#endif
