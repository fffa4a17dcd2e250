/*
 * sbx_abi.h - the snapbox guest/host ABI, shared by the guest library and the host.
 *
 * This header is the single definition of everything both sides must agree on:
 * the version note, the guest-physical memory layout, the hypercall ports and
 * operations, the value encoding and the exchange area. It is freestanding C11
 * (only <stdint.h>), so the guest library includes it unchanged.
 *
 * It is a contract of its own, apart from the host API (snapbox.h), which
 * does not include it: wire names carry SBX_ABI_ (type codes, log levels,
 * limits), and the host maps API values to wire values in one place
 * (src/vcpu/value.c). The layout checks are C11 _Static_asserts, skipped by
 * a C++ compiler.
 *
 * Any change to a struct or constant here changes the ABI: bump SBX_ABI_VERSION.
 * The ABI version is part of the version the host checks a guest's note against.
 */
#ifndef SBX_ABI_H
#define SBX_ABI_H

#ifndef __ASSEMBLER__
#include <stdint.h>
#endif

#define SBX_ABI_VERSION 2

/* Unsigned 64-bit constants that the assembler can read too. */
#ifdef __ASSEMBLER__
#define SBX_U64(x) x
#else
#define SBX_U64(x) x##ull
#endif

/* ---- Version note -------------------------------------------------------
 * An ELF note (section type SHT_NOTE, allocated, covered by a PT_NOTE program
 * header so `strip` keeps it) in section SBX_NOTE_SECTION:
 *   Elf64_Nhdr { n_namesz = sizeof SBX_NOTE_OWNER, n_descsz = sizeof(desc), n_type }
 *   owner name "snapbox\0" (8 bytes, already 4-aligned)
 *   struct sbx_note_version_desc
 */
#define SBX_NOTE_SECTION ".note.snapbox"
#define SBX_NOTE_OWNER "snapbox"
#define SBX_NOTE_OWNER_SIZE 8
#define SBX_NOTE_TYPE_VERSION 0x53420001
#define SBX_ABI_VERSION_STRING_MAX 32
#define SBX_NOTE_DESC_SIZE 48

/* Layout checks: C11 only (C++ spells it static_assert). */
#if !defined(__ASSEMBLER__) && !defined(__cplusplus)
#define SBX_ABI_ASSERT(cond, what) _Static_assert(cond, what)
#else
#define SBX_ABI_ASSERT(cond, what)
#endif

#ifndef __ASSEMBLER__
struct sbx_note_version_desc {
    uint32_t major;
    uint32_t minor;
    uint32_t patch;
    uint32_t abi;
    char version[SBX_ABI_VERSION_STRING_MAX]; /* "MAJOR.MINOR.PATCH", NUL-terminated */
};
SBX_ABI_ASSERT(sizeof(struct sbx_note_version_desc) == SBX_NOTE_DESC_SIZE, "note descriptor layout");
#endif /* __ASSEMBLER__ */

/* ---- Guest-physical memory layout ----------------------------------------
 * Guest virtual addresses equal guest physical ones (identity map). The first
 * 2 MiB are mapped with 4 KiB pages so that single pages can be absent (null
 * page, stack guard) or read-only; the rest with 2 MiB pages.
 */
#define SBX_PAGE_SIZE SBX_U64(0x1000)
#define SBX_LAYOUT_NULL_PAGE SBX_U64(0x0)          /* never mapped: NULL faults */
#define SBX_LAYOUT_GDT SBX_U64(0x1000)             /* GDT, then the TSS */
#define SBX_LAYOUT_TSS SBX_U64(0x1800)
#define SBX_LAYOUT_IDT SBX_U64(0x2000)
#define SBX_LAYOUT_FAULT_STUBS SBX_U64(0x3000)     /* host-written exception stubs */
#define SBX_LAYOUT_PML4 SBX_U64(0x4000)
#define SBX_LAYOUT_PDPT SBX_U64(0x5000)
#define SBX_LAYOUT_PD SBX_U64(0x6000)
#define SBX_LAYOUT_PT SBX_U64(0x7000)              /* 4 KiB pages of the first 2 MiB */
#define SBX_LAYOUT_IST_STACK SBX_U64(0x8000)       /* exception stack, 16 KiB */
#define SBX_LAYOUT_IST_STACK_TOP SBX_U64(0xc000)
#define SBX_LAYOUT_BOOT SBX_U64(0xc000)            /* struct sbx_boot_info, host-written */
#define SBX_LAYOUT_XCHG SBX_U64(0x10000)           /* exchange area */
#define SBX_LAYOUT_XCHG_SIZE SBX_U64(0x40000)      /* 256 KiB */
#define SBX_LAYOUT_STACK_GUARD SBX_U64(0x50000)    /* never mapped: stack overflow faults */
#define SBX_LAYOUT_STACK SBX_U64(0x51000)
#define SBX_LAYOUT_STACK_TOP SBX_U64(0x100000)
#define SBX_LAYOUT_IMAGE SBX_U64(0x100000)         /* PT_LOAD segments start here */
#define SBX_LAYOUT_IMAGE_END SBX_U64(0x200000)     /* end of the first 2 MiB, 4 KiB pages */
#define SBX_LAYOUT_IMAGE_MAX_END SBX_U64(0x30000000) /* images end by 768 MiB */
#define SBX_LAYOUT_HEAP SBX_U64(0x200000)          /* heap of an image within the first 2 MiB */
/* An image that ends past SBX_LAYOUT_IMAGE_END is mapped with 4 KiB pages
 * (its own protections) up to the next 2 MiB boundary; the extra page tables
 * follow the image, and the heap follows them. The boot information page
 * says where the heap is, whatever the image. */
#define SBX_MEM_MIN (SBX_U64(4) << 20)
#define SBX_MEM_MAX (SBX_U64(1) << 30)             /* one page directory of 2 MiB pages */

/* ---- Hypercalls ------------------------------------------------------------
 * The guest writes its request into the exchange area, then executes
 * `outb %al, $SBX_PORT_HYPERCALL` with al = operation. The host answers in the
 * exchange area and resumes the guest after the OUT.
 * Exception stubs report `outb %al, $SBX_PORT_FAULT` with al = vector.
 */
#define SBX_PORT_HYPERCALL 0x50
#define SBX_PORT_FAULT 0x51

#define SBX_HC_READY 1     /* init done; hc.a0 = function table gpa, hc.a1 = count */
#define SBX_HC_RETURN 2    /* call done; result in xchg.ret */
#define SBX_HC_LOG 3       /* a0 = level, a1 = message gpa, a2 = length */
#define SBX_HC_ABORT 4     /* a0 = code (int32), a1 = message gpa, a2 = length */
#define SBX_HC_HOST_CALL 5 /* a0 = name gpa, a1 = name length; args in xchg.args */
#define SBX_HC_TIME 6      /* a0 = SBX_CLOCK_*; the host answers a0 = seconds, a1 = nanoseconds */
#define SBX_HC_RANDOM 7    /* a0 = gpa, a1 = length <= SBX_RANDOM_MAX: fill with fresh host entropy */

#define SBX_CLOCK_REALTIME 0
#define SBX_CLOCK_MONOTONIC 1
#define SBX_RANDOM_MAX 256u

/* Exchange-area offsets for guests written in assembly (guest/plain);
 * checked against struct sbx_xchg below. */
#define SBX_XCHG_OFF_HC_A0 8
#define SBX_XCHG_OFF_HC_A1 16
#define SBX_XCHG_OFF_RET 240
#define SBX_ABI_T_I64_ASM 2

#ifndef __ASSEMBLER__

/* ---- Values ----------------------------------------------------------------- */
/* Type codes on the wire (values, function tables). */
enum sbx_abi_type {
    SBX_ABI_T_VOID = 0,
    SBX_ABI_T_I32 = 1,
    SBX_ABI_T_I64 = 2,
    SBX_ABI_T_U64 = 3,
    SBX_ABI_T_F64 = 4,
    SBX_ABI_T_BOOL = 5,
    SBX_ABI_T_STR = 6,   /* UTF-8 bytes, not NUL-terminated on the wire */
    SBX_ABI_T_BYTES = 7,
    SBX_ABI_T_COUNT_
};
#define SBX_ABI_MAX_ARGS 8u
#define SBX_ABI_MAX_NAME 64u     /* longest function name, in bytes */
#define SBX_ABI_MAX_FUNCS 64u    /* functions a guest may register */

/* A value as it crosses the boundary. Strings and bytes are (gpa, len) pairs. */
struct sbx_abi_value {
    uint32_t type; /* enum sbx_abi_type */
    uint32_t reserved;
    union {
        int64_t i64; /* also I32 and BOOL (0 or 1) */
        uint64_t u64;
        double f64;
        struct {
            uint64_t gpa;
            uint64_t len;
        } buf;
    } u;
};
SBX_ABI_ASSERT(sizeof(struct sbx_abi_value) == 24, "value layout");

/* One guest function, as the guest publishes it at READY. */
struct sbx_abi_func {
    uint64_t name_gpa;
    uint32_t name_len;
    uint8_t ret_type;
    uint8_t nargs;
    uint8_t arg_types[SBX_ABI_MAX_ARGS];
    uint8_t reserved[2];
    uint64_t entry; /* guest-private: the function's address */
};
SBX_ABI_ASSERT(sizeof(struct sbx_abi_func) == 32, "function entry layout");

/* ---- Exchange area ------------------------------------------------------------
 * At SBX_LAYOUT_XCHG. Host-written strings and bytes (call arguments, host
 * function results) go into data[]; their gpa points there.
 */
#define SBX_XCHG_MAGIC 0x48435853u /* "SXCH" */

struct sbx_xchg {
    uint32_t magic;
    uint32_t abi;
    /* hypercall request, guest -> host */
    uint64_t hc_a[4];
    /* call request, host -> guest (function index into the guest's table) */
    uint32_t call_index;
    uint32_t nargs;
    struct sbx_abi_value args[SBX_ABI_MAX_ARGS]; /* also host-call args, guest -> host */
    struct sbx_abi_value ret;                /* call result / host-call result */
    int32_t host_status;                     /* host call: 0 ok, negative error */
    uint32_t data_used;
    uint64_t mem_size; /* host-written: guest memory size, the heap ends there */
    uint32_t restored; /* call request: 1 in the first call after a restore or reset */
    uint32_t reserved0;
    uint8_t reserved[224];
    uint8_t data[]; /* to SBX_LAYOUT_XCHG + SBX_LAYOUT_XCHG_SIZE */
};
#define SBX_XCHG_HEADER_SIZE 512u
SBX_ABI_ASSERT(sizeof(struct sbx_xchg) == SBX_XCHG_HEADER_SIZE, "exchange area layout");
SBX_ABI_ASSERT(__builtin_offsetof(struct sbx_xchg, hc_a) == SBX_XCHG_OFF_HC_A0, "xchg offsets");
SBX_ABI_ASSERT(__builtin_offsetof(struct sbx_xchg, hc_a) + 8 == SBX_XCHG_OFF_HC_A1, "xchg offsets");
SBX_ABI_ASSERT(__builtin_offsetof(struct sbx_xchg, ret) == SBX_XCHG_OFF_RET, "xchg offsets");
SBX_ABI_ASSERT(SBX_ABI_T_I64 == SBX_ABI_T_I64_ASM, "type codes");
/* ---- Boot information ---------------------------------------------------------
 * At SBX_LAYOUT_BOOT, written by the host before the guest starts: where the
 * guest's memory regions are, so the guest library need not assume them. */
#define SBX_BOOT_MAGIC 0x544f4f42u /* "BOOT" */
struct sbx_boot_info {
    uint32_t magic;
    uint32_t abi;
    uint64_t mem_size;
    uint64_t image_end;   /* end of the last segment, page-aligned */
    uint64_t heap_start;  /* the heap: [heap_start, heap_end) */
    uint64_t heap_end;
    uint64_t stack_guard; /* never mapped: a fault here is a stack overflow */
    uint64_t stack_top;
    uint64_t xchg;        /* the exchange area and its size */
    uint64_t xchg_size;
    uint64_t reserved[7];
};
SBX_ABI_ASSERT(sizeof(struct sbx_boot_info) == 128, "boot information layout");

#define SBX_XCHG_DATA_GPA (SBX_LAYOUT_XCHG + SBX_XCHG_HEADER_SIZE)
#define SBX_XCHG_DATA_SIZE (SBX_LAYOUT_XCHG_SIZE - SBX_XCHG_HEADER_SIZE)

/* Guest log levels, as SBX_HC_LOG carries them in hc.a0. */
enum sbx_abi_log_level {
    SBX_ABI_LOG_ERROR = 0,
    SBX_ABI_LOG_WARN = 1,
    SBX_ABI_LOG_INFO = 2,
    SBX_ABI_LOG_DEBUG = 3,
};

#endif /* __ASSEMBLER__ */

#endif
