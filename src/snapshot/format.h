/*
 * format.h - the snapshot file format, version 2. The one definition of the
 * on-disk layout; docs/snapshot-format.md describes it for readers.
 *
 *   offset 0                 struct sbx_snap_header (prefix, fixed-width fields)
 *   header.sections_offset   nsections sections: struct sbx_snap_section + payload,
 *                            each padded to 8 bytes (vCPU state, MSRs, CPUID,
 *                            XSAVE area, function table)
 *   header.index_offset      nchunks x struct sbx_snap_chunk, ascending gpa
 *   header.data_offset       the chunks' compressed bytes
 *
 * No kernel struct is stored: every field has a fixed width and a name here,
 * so a new kernel or a raised library limit cannot change the format.
 * All integers are little-endian (the only byte order snapbox runs on).
 */
#ifndef SBX_SNAPSHOT_FORMAT_H
#define SBX_SNAPSHOT_FORMAT_H

#include <stdint.h>

#include "sbx_abi.h"

/* The prefix never changes shape in any format version, so every build can
 * read it and say "format N; this build reads M". */
#define SBX_SNAP_MAGIC "SNAPBOX\0"
#define SBX_SNAP_MAGIC_SIZE 8
#define SBX_SNAP_FORMAT 2u

struct sbx_snap_prefix {
    uint8_t magic[SBX_SNAP_MAGIC_SIZE];
    uint32_t format;      /* SBX_SNAP_FORMAT */
    uint32_t header_size; /* sizeof(struct sbx_snap_header) of that format */
};
_Static_assert(sizeof(struct sbx_snap_prefix) == 16, "snapshot prefix layout");

#define SBX_SNAP_VERSION_STRING 32
_Static_assert(SBX_VERSION_STRING_MAX == SBX_SNAP_VERSION_STRING, "version string width");
struct sbx_snap_version {
    uint32_t major, minor, patch, abi;
    char string[SBX_SNAP_VERSION_STRING]; /* NUL-terminated */
};
_Static_assert(sizeof(struct sbx_snap_version) == 48, "snapshot version layout");

enum sbx_snap_compression { SBX_SNAP_LZ4 = 1, SBX_SNAP_LZ4HC = 2 };

struct sbx_snap_header {
    struct sbx_snap_prefix prefix;
    uint64_t header_xxh3; /* XXH3-64 of this header with this field zero */
    uint64_t file_size;
    struct sbx_snap_version writer; /* snapbox that wrote the file: information only */
    struct sbx_snap_version guest;  /* from the guest's note, if guest_has_note */
    uint32_t guest_has_note;        /* 0 or 1 */
    uint32_t layout_abi;            /* SBX_ABI_VERSION: the layout of sbx_abi.h */
    uint32_t page_size;             /* SBX_PAGE_SIZE */
    uint32_t compression;           /* enum sbx_snap_compression */
    uint64_t mem_size;
    uint64_t nonzero_pages;
    uint64_t guest_elf_xxh3;
    /* CPU facts the restore-time CPU check compares (the full CPUID is a section) */
    char cpu_vendor[12];            /* CPUID leaf 0 EBX, EDX, ECX */
    uint32_t cpuid_features[4];     /* leaf 1 ECX, EDX; leaf 7 EBX, ECX */
    uint32_t reserved0;
    /* regions */
    uint64_t sections_offset;       /* == header_size */
    uint64_t sections_size;         /* bytes of all sections, padding included */
    uint64_t sections_xxh3;         /* XXH3-64 of those bytes */
    uint32_t nsections;
    uint32_t nchunks;
    uint64_t index_offset;          /* == sections_offset + sections_size */
    uint64_t index_xxh3;            /* XXH3-64 of the whole chunk index */
    uint64_t data_offset;
    uint64_t data_size;
    uint64_t reserved[8];           /* zero */
};
_Static_assert(sizeof(struct sbx_snap_header) == 328, "snapshot header layout");

/* ---- sections ----------------------------------------------------------------- */

enum sbx_snap_section_type {
    SBX_SNAP_SEC_VCPU = 1,      /* struct sbx_snap_vcpu */
    SBX_SNAP_SEC_MSRS = 2,      /* n x struct sbx_snap_msr, ascending index */
    SBX_SNAP_SEC_CPUID = 3,     /* n x struct sbx_snap_cpuid */
    SBX_SNAP_SEC_XSAVE = 4,     /* the XSAVE area, its length in bytes */
    SBX_SNAP_SEC_FUNCTIONS = 5, /* u32 count, then count variable-length records */
};
/* A reader skips an unknown section with this flag and rejects one without it. */
#define SBX_SNAP_SEC_OPTIONAL 1u

struct sbx_snap_section {
    uint32_t type;   /* enum sbx_snap_section_type */
    uint32_t flags;  /* SBX_SNAP_SEC_OPTIONAL; other bits zero */
    uint64_t length; /* payload bytes that follow; then zero padding to 8 bytes */
    uint64_t xxh3;   /* XXH3-64 of the payload */
};
_Static_assert(sizeof(struct sbx_snap_section) == 24, "snapshot section layout");

#define SBX_SNAP_MAX_SECTIONS 64u
#define SBX_SNAP_SECTIONS_MAX (1u << 20) /* bytes; format 2's own sections need ~30 KiB */

struct sbx_snap_segment {
    uint64_t base;
    uint32_t limit;
    uint16_t selector;
    uint8_t type, present, dpl, db, s, l, g, avl, unusable;
    uint8_t reserved;
};
_Static_assert(sizeof(struct sbx_snap_segment) == 24, "snapshot segment layout");

struct sbx_snap_dtable {
    uint64_t base;
    uint16_t limit;
    uint16_t reserved[3];
};
_Static_assert(sizeof(struct sbx_snap_dtable) == 16, "snapshot descriptor table layout");

struct sbx_snap_xcr {
    uint32_t index;
    uint32_t reserved;
    uint64_t value;
};
_Static_assert(sizeof(struct sbx_snap_xcr) == 16, "snapshot XCR layout");

#define SBX_SNAP_MAX_XCRS 16u /* XCR indices are architecturally small (KVM_MAX_XCRS) */

/* The VCPU section: registers, debug registers, pending events, XCRs. */
struct sbx_snap_vcpu {
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rip, rflags;
    struct sbx_snap_segment cs, ds, es, fs, gs, ss, tr, ldt;
    struct sbx_snap_dtable gdt, idt;
    uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base;
    uint64_t interrupt_bitmap[4]; /* pending external interrupts, one bit per vector */
    uint64_t dr0, dr1, dr2, dr3, dr6, dr7;
    /* vCPU events */
    uint8_t exception_injected, exception_nr, exception_has_error_code, exception_pending;
    uint8_t exception_has_payload;
    uint8_t interrupt_injected, interrupt_nr, interrupt_soft, interrupt_shadow;
    uint8_t nmi_injected, nmi_pending, nmi_masked;
    uint8_t smi_smm, smi_pending, smi_inside_nmi, smi_latched_init;
    uint8_t triple_fault_pending;
    uint8_t reserved0[7];
    uint32_t exception_error_code;
    uint32_t sipi_vector;
    uint32_t events_flags; /* KVM_VCPUEVENT_VALID_* bits as saved */
    uint32_t reserved1;
    uint64_t exception_payload;
    /* extended control registers */
    uint32_t nxcrs; /* <= SBX_SNAP_MAX_XCRS */
    uint32_t xcrs_flags;
    struct sbx_snap_xcr xcrs[SBX_SNAP_MAX_XCRS];
    uint64_t reserved2[4];
};
_Static_assert(sizeof(struct sbx_snap_vcpu) == 848, "snapshot vCPU record layout");

struct sbx_snap_msr {
    uint32_t index;
    uint32_t reserved;
    uint64_t value;
};
_Static_assert(sizeof(struct sbx_snap_msr) == 16, "snapshot MSR layout");

struct sbx_snap_cpuid {
    uint32_t function, index, flags;
    uint32_t eax, ebx, ecx, edx;
    uint32_t reserved;
};
_Static_assert(sizeof(struct sbx_snap_cpuid) == 32, "snapshot CPUID layout");
#define SBX_SNAP_CPUID_FLAGS 7u /* the KVM_CPUID_FLAG_* bits a reader accepts */

/* FUNCTIONS payload: u32 count, then per function
 *   u16 name_len, name_len bytes (no NUL), u8 ret, u8 nargs, nargs x u8 type.
 * Names and signatures follow the one rule (src/common/names.c). */
#define SBX_SNAP_FUNC_FIXED 4u /* name_len + ret + nargs */

/* ---- chunks ------------------------------------------------------------------- */

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

#endif
