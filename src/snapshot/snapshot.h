/* snapshot.h - internal: the snapshot handle and the format checks. */
#ifndef SBX_SNAPSHOT_H
#define SBX_SNAPSHOT_H

#include <stdatomic.h>

#include "format.h"
#include "internal.h"
#include "vcpu/vcpu.h"

/* What the header and its sections say, decoded and checked: what restore,
 * templates, info and reset use. Plain data: a template keeps a copy. */
struct sbx_snap_meta {
    struct sbx_snap_header h;   /* the fixed header, as in the file */
    struct sbx_vcpu_state vcpu; /* from the VCPU, MSRS, CPUID and XSAVE sections */
    uint32_t nfuncs;            /* from the FUNCTIONS section; <= SBX_MAX_FUNCS */
    struct sbx_func funcs[SBX_MAX_FUNCS];
};

struct sbx_snapshot {
    char *path;             /* file it came from, or "(memory)" */
    uint8_t *image;         /* the file's bytes: header and sections only, or the whole file */
    size_t size;
    bool complete;          /* index and chunks present and verified */
    const struct sbx_snap_header *hdr;  /* inside image */
    const struct sbx_snap_chunk *index; /* inside image, when complete */
    struct sbx_snap_meta *meta;         /* decoded header and sections */
    /* From the open options: restore and templates apply them (sbx_snapshot_check_compat). */
    enum sbx_version_policy policy;
    bool require_note;
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
    struct sbx_snap_meta *hdr;  /* functions, versions, CPU facts, vCPU state */
    struct sbx_vcpu_state vcpu; /* = hdr->vcpu, where reset.c reads it */
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
    const struct sbx_cpu_facts *cpu; /* KVM's offer, used where state has no CPUID */
    const struct sbx_func *funcs;
    size_t nfuncs;
    bool guest_has_note;
    struct sbx_version guest_version;
    uint64_t guest_hash;
    bool hc;
    /* Optional: a bit per page that may be non-zero; pages without it are
     * zero and not even read (sbx_vm_touched_pages). NULL: scan them all. */
    const uint64_t *touched;
};

/* template.c: a sandbox restored from t keeps it alive until destroyed. */
void sbx_template_hold(const struct sbx_template *t);

/* file.c: the checks of sbx_snapshot_open on a copy of buf[0, len), named
 * name in messages (fuzzers and tests feed untrusted bytes through it). */
int sbx_snapshot_from_memory(const void *buf, size_t len, const char *name,
                             const struct sbx_snapshot_open_opts *opts, struct sbx_snapshot **out,
                             struct sbx_diag *diag);

/* capture.c: encode in into snap's image (header, sections, index, chunks). */
int sbx_snap_encode(const struct sbx_snap_input *in, struct sbx_snapshot *snap, struct sbx_diag *diag);

/* parse.c: checks on bytes already in memory; each names path and the field. */
int sbx_snap_check_prefix(const uint8_t *buf, size_t len, const char *path, struct sbx_diag *diag);
int sbx_snap_check_header(const struct sbx_snap_header *h, uint64_t actual_size, const char *path,
                          struct sbx_diag *diag);
int sbx_snap_check_index(const struct sbx_snapshot *snap, struct sbx_diag *diag);
int sbx_snap_check_chunks(const struct sbx_snapshot *snap, struct sbx_diag *diag);
/* Decompress chunk i into dst (raw_size bytes), checking its size. */
int sbx_snap_decode_chunk(const struct sbx_snapshot *snap, uint32_t i, uint8_t *dst,
                          struct sbx_diag *diag);
uint64_t sbx_snap_header_hash(const struct sbx_snap_header *h);
struct sbx_version sbx_snap_version(const struct sbx_snap_version *v);

/* sections.c: the section framing and the FUNCTIONS section. */
struct sbx_snap_writer {
    uint8_t *buf;   /* sized by the caller from sbx_snap_section_size */
    uint64_t len;
    uint32_t count;
};
/* Bytes a section of len payload bytes takes, header and padding included. */
uint64_t sbx_snap_section_size(uint64_t len);
/* Append a section header; returns its zeroed payload of len bytes. */
uint8_t *sbx_snap_put_section(struct sbx_snap_writer *w, uint32_t type, uint64_t len);
/* Set every section's checksum in buf[0, size); stops at the first section
 * that does not fit, so it is safe on any bytes (the fuzzers use it). */
void sbx_snap_seal_sections(uint8_t *buf, uint64_t size);
uint64_t sbx_snap_funcs_size(const struct sbx_func *funcs, size_t n);
void sbx_snap_put_funcs(struct sbx_snap_writer *w, const struct sbx_func *funcs, size_t n);
/* Check and decode the sections region (h's sections_* fields) into m. */
int sbx_snap_read_sections(const uint8_t *buf, const struct sbx_snap_header *h,
                           struct sbx_snap_meta *m, const char *path, struct sbx_diag *diag);

/* vcpu_record.c: the one place that converts between struct sbx_vcpu_state
 * (kernel structs) and the VCPU, MSRS, CPUID and XSAVE sections. */
int sbx_vcpu_record_check(const struct sbx_vcpu_state *st, struct sbx_diag *diag);
uint64_t sbx_vcpu_record_size(const struct sbx_vcpu_state *st);
void sbx_vcpu_record_put(struct sbx_snap_writer *w, const struct sbx_vcpu_state *st);
/* Decode one of those sections into st; SBX_E_SNAP_CORRUPT naming path if bad. */
int sbx_vcpu_record_get(uint32_t type, const uint8_t *p, uint64_t len, struct sbx_vcpu_state *st,
                        const char *path, struct sbx_diag *diag);
/* The guest's XCR0 (1, x87 only, when it has none). */
uint64_t sbx_vcpu_xcr0(const struct sbx_vcpu_state *st);

/* The facts the compatibility rules judge, from a header here or from an
 * OCI config over the network (src/oci): the one home of those rules. */
struct sbx_snap_facts {
    uint32_t format, layout_abi;
    struct sbx_version writer, guest; /* guest: valid if guest_has_note */
    bool guest_has_note;
    char cpu_vendor[12];
    uint32_t cpuid_features[4]; /* leaf 1 ECX, EDX; leaf 7 EBX, ECX */
    uint64_t xcr0;
};
/* file.c */
void sbx_snap_facts_of(const struct sbx_snap_meta *m, struct sbx_snap_facts *f);
/* What sbx_snapshot_check_compat decides, for what (a path or a reference). */
int sbx_snap_judge(const struct sbx_snap_facts *f, enum sbx_version_policy policy,
                   bool require_note, const char *what, struct sbx_diag *diag);
/* restore.c: SBX_E_CPU unless cpu has what f's snapshot needs. */
int sbx_snap_judge_cpu(const struct sbx_snap_facts *f, const struct sbx_cpu_facts *cpu,
                       const char *path, struct sbx_diag *diag);

/* restore.c: shared by restore from a file and from a template. */
int sbx_snap_check_cpu(const struct sbx_snap_meta *m, const char *path, const struct sbx_vm *vm,
                       struct sbx_diag *diag);
/* Load m's vCPU state into the VM and its function table and guest facts
 * into the sandbox. */
int sbx_snap_apply_header(struct sbx_sandbox *s, const struct sbx_snap_meta *m,
                          struct sbx_diag *diag);

#endif
