/*
 * format.h - the snapshot file format, version 1. The one definition of the
 * on-disk layout; docs/snapshot-format.md describes it for readers.
 *
 *   offset 0            struct sbx_snap_header (prefix, fields, vCPU state, functions)
 *   header.index_offset nchunks x struct sbx_snap_chunk, ascending gpa
 *   header.data_offset  the chunks' compressed bytes
 *
 * All integers are little-endian (the only byte order snapbox runs on).
 */
#ifndef SBX_SNAPSHOT_FORMAT_H
#define SBX_SNAPSHOT_FORMAT_H

#include <linux/kvm.h>
#include <stdint.h>

#include "sbx_abi.h"

/* The prefix never changes shape in any format version, so every build can
 * read it and say "format N; this build reads M". */
#define SBX_SNAP_MAGIC "SNAPBOX\0"
#define SBX_SNAP_MAGIC_SIZE 8
#define SBX_SNAP_FORMAT 1u

struct sbx_snap_prefix {
    uint8_t magic[SBX_SNAP_MAGIC_SIZE];
    uint32_t format;      /* SBX_SNAP_FORMAT */
    uint32_t header_size; /* sizeof(struct sbx_snap_header) of that format */
};
_Static_assert(sizeof(struct sbx_snap_prefix) == 16, "snapshot prefix layout");

struct sbx_snap_version {
    uint32_t major, minor, patch, abi;
    char string[SBX_ABI_VERSION_STRING_MAX]; /* NUL-terminated */
};
_Static_assert(sizeof(struct sbx_snap_version) == 48, "snapshot version layout");

#define SBX_SNAP_NAME_MAX 72 /* >= SBX_ABI_MAX_NAME + 1: names are NUL-terminated */
struct sbx_snap_func {
    char name[SBX_SNAP_NAME_MAX];
    uint8_t ret, nargs; /* type codes of the guest ABI */
    uint8_t args[SBX_ABI_MAX_ARGS];
    uint8_t reserved[6];
};
_Static_assert(sizeof(struct sbx_snap_func) == 88, "snapshot function layout");

enum sbx_snap_compression { SBX_SNAP_LZ4 = 1, SBX_SNAP_LZ4HC = 2 };
#define SBX_SNAP_CHUNK_RAW 1u /* the chunk is stored uncompressed */

/* A run of consecutive non-zero pages. All-zero pages are not stored. */
struct sbx_snap_chunk {
    uint64_t gpa;       /* page-aligned guest-physical address */
    uint32_t raw_size;  /* bytes of memory, a multiple of the page size */
    uint32_t comp_size; /* bytes in the file */
    uint64_t offset;    /* from the start of the file, inside the data region */
    uint64_t xxh3;      /* XXH3-64 of the stored (compressed) bytes */
    uint32_t flags;     /* SBX_SNAP_CHUNK_RAW */
    uint32_t reserved;
};
_Static_assert(sizeof(struct sbx_snap_chunk) == 40, "snapshot chunk layout");

#define SBX_SNAP_CHUNK_MAX_PAGES 256u /* 1 MiB of memory per chunk at most */
#define SBX_SNAP_XSAVE_SIZE 4096u     /* struct kvm_xsave's legacy region */

struct sbx_snap_header {
    struct sbx_snap_prefix prefix;
    uint64_t header_xxh3; /* XXH3-64 of this header with this field zero */
    uint64_t file_size;
    struct sbx_snap_version host;  /* snapbox that wrote the file */
    struct sbx_snap_version guest; /* from the guest's note, if guest_has_note */
    uint32_t guest_has_note;
    uint32_t compression; /* enum sbx_snap_compression */
    uint64_t guest_elf_xxh3;
    /* CPU facts restore depends on */
    char cpu_vendor[12];
    uint32_t xsave_size;
    uint64_t xcr0;
    uint32_t cpuid_features[4]; /* leaf 1 ecx, edx; leaf 7 ebx, ecx as KVM offered them */
    /* memory */
    uint64_t mem_size;
    uint32_t page_size;
    uint32_t layout_abi; /* SBX_ABI_VERSION: the layout of sbx_abi.h */
    uint64_t nonzero_pages;
    uint32_t nchunks;
    uint32_t nfuncs;
    uint64_t index_offset;
    uint64_t index_xxh3; /* XXH3-64 of the whole chunk index */
    uint64_t data_offset;
    uint64_t data_size;
    uint64_t reserved[2];
    /* vCPU state */
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_xcrs xcrs;
    uint32_t xsave[SBX_SNAP_XSAVE_SIZE / 4]; /* struct kvm_xsave.region */
    /* the guest's functions */
    struct sbx_snap_func funcs[SBX_ABI_MAX_FUNCS];
};
_Static_assert(sizeof(struct kvm_regs) == 144 && sizeof(struct kvm_sregs) == 312 &&
                   sizeof(struct kvm_xcrs) == 392,
               "KVM state layout");
_Static_assert(sizeof(struct sbx_snap_header) == 10840, "snapshot header layout");

#endif
