/*
 * snapbox.h - load, check and run small freestanding x86-64 guests in KVM.
 *
 * Conventions
 * - Every public name starts with sbx_ / SBX_. Handles are opaque.
 * - A function that can fail returns 0 (or a count) on success and a negative
 *   enum sbx_error code on failure. When the caller passes a struct sbx_diag,
 *   it is filled with the code and a message naming the file, the field and
 *   the reason, ready to print. Pass NULL to ignore it.
 * - The library never prints and never exits; it reports warnings through the
 *   caller's log callback, if one is given. It keeps no global mutable state
 *   beyond a per-process cache of facts about the host's KVM (which MSRs
 *   make up a vCPU's state), and installs no signal handler.
 * - Ownership: handles are freed by their own free/destroy function. Strings
 *   and bytes that the library returns point into memory owned by the handle
 *   they came from; each function says how long they stay valid.
 * - Structs that grow: every struct a caller fills (options, configuration)
 *   or receives (info) begins with `size_t sz`, the size the caller was
 *   compiled with; declare them with SBX_OPTS. An older caller (smaller sz)
 *   gets the defaults for the fields it does not know, and receives only the
 *   fields it knows; a newer caller (larger sz) is accepted when the fields
 *   this library does not know are zero, else refused with SBX_E_INVAL, and
 *   its output fields unknown here are left as it set them (zero with
 *   SBX_OPTS). sz 0, or one that is no struct's size, is SBX_E_INVAL with a
 *   message naming the struct. New fields are only ever added at the end.
 * - This header is the host API only. The guest ABI (memory layout, exchange
 *   area, wire encoding) is a separate contract with its own version, in
 *   sbx_abi.h, which host programs never need. C and C++ both compile this
 *   header.
 */
#ifndef SNAPBOX_H
#define SNAPBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snapbox_version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the functions libsnapbox.so exports; everything else stays hidden. */
#define SBX_API __attribute__((visibility("default")))

/* Declare a struct TYPE that carries its size, with designated initialisers:
 *     SBX_OPTS(sbx_config, cfg, .deadline_ms = 100, .log = my_log);
 *     SBX_OPTS(sbx_snapshot_info, info);
 * Fields not named are zero, which means "the default" for every field.
 * C++ (designated initialisers are C++20, and in order): value-initialise and
 * set sz by hand:
 *     sbx_config cfg{}; cfg.sz = sizeof cfg; cfg.deadline_ms = 100; */
#define SBX_OPTS(TYPE, ...) SBX_OPTS_(TYPE, __VA_ARGS__, )
/* The name travels in the variadic part, so SBX_OPTS(sbx_snapshot_info, info)
 * with no fields is valid ISO C (no empty "..."), even under -pedantic. */
#define SBX_OPTS_(TYPE, NAME, ...) struct TYPE NAME = { .sz = sizeof(struct TYPE), __VA_ARGS__ }

/* ---- Errors ----------------------------------------------------------------- */
enum sbx_error {
    SBX_OK = 0,
    SBX_E_INVAL = -1,        /* bad argument from the caller */
    SBX_E_NOMEM = -2,        /* out of host memory */
    SBX_E_IO = -3,           /* a file could not be opened, read or written */
    SBX_E_ELF = -4,          /* not an ELF file snapbox accepts, or malformed */
    SBX_E_NOTE = -5,         /* the version note is malformed */
    SBX_E_VERSION = -6,      /* guest and host versions are incompatible */
    SBX_E_NO_NOTE = -7,      /* no version note, and the policy requires one */
    SBX_E_KVM = -8,          /* /dev/kvm is missing or a KVM call failed */
    SBX_E_GUEST_ABORT = -9,  /* the guest aborted (diag.abort_code) */
    SBX_E_GUEST_FAULT = -10, /* CPU exception in the guest (diag.fault) */
    SBX_E_TIMEOUT = -11,     /* the call ran past its deadline */
    SBX_E_GUEST_ABI = -12,   /* the guest broke the ABI (bad pointer, length, type) */
    SBX_E_POISONED = -13,    /* an earlier abort, fault or timeout poisoned the sandbox */
    SBX_E_NO_FUNC = -14,     /* no guest function of that name */
    SBX_E_ARGS = -15,        /* wrong number or types of arguments */
    SBX_E_HOST_FN = -16,     /* a host function failed */
    SBX_E_LIMIT = -17,       /* a configured limit was exceeded */
    SBX_E_SNAP_FORMAT = -18, /* not a snapshot file, or another format version */
    SBX_E_SNAP_CORRUPT = -19,/* a snapshot's checksum, size or offset is wrong */
    SBX_E_CPU = -20,         /* this CPU lacks what the snapshot needs */
    SBX_E_BUSY = -21,        /* the sandbox is already in a call (a host callback re-entered it) */
    /* OCI registries (snapbox_oci.h) */
    SBX_E_UNREACHABLE = -22, /* the registry cannot be reached (connect, DNS, TLS handshake) */
    SBX_E_NET = -23,         /* a transfer broke off, timed out, or the registry kept failing (5xx, 429) */
    SBX_E_AUTH = -24,        /* the registry refused the credentials, or none were given */
    SBX_E_NOT_FOUND = -25,   /* no such repository, tag, manifest or blob */
    SBX_E_DIGEST = -26,      /* downloaded bytes do not match their digest or size */
    SBX_E_REGISTRY = -27,    /* a reply that breaks the protocol, or not a snapbox artifact */
    SBX_E_ERROR_MIN_ = -27
};

#define SBX_DIAG_MSG_MAX 512

struct sbx_fault_info {
    uint32_t vector;     /* x86 exception vector (14 = page fault, ...) */
    uint64_t rip;        /* instruction that faulted */
    uint64_t addr;       /* faulting address (CR2) for page faults, else 0 */
    uint64_t error_code; /* the CPU's error code, where the vector has one */
};

/* Filled by the library, never read by it, passed to nearly every call: it
 * has no sz (a forgotten sz would silence every error). Its size is fixed for
 * this major version; fields added later take the reserved room, which the
 * library leaves zero, so storage declared by an older caller always fits. */
struct sbx_diag {
    int code;                   /* enum sbx_error */
    char msg[SBX_DIAG_MSG_MAX]; /* human message, NUL-terminated */
    struct sbx_fault_info fault; /* set with SBX_E_GUEST_FAULT */
    int32_t abort_code;         /* set with SBX_E_GUEST_ABORT */
    uint32_t reserved_[15];     /* room for later fields */
};

/* Static text for an error code ("guest version mismatch", ...). */
SBX_API const char *sbx_strerror(int code);

/* ---- Logging ---------------------------------------------------------------- */
enum sbx_log_level {
    SBX_LOG_ERROR = 0,
    SBX_LOG_WARN = 1,
    SBX_LOG_INFO = 2,
    SBX_LOG_DEBUG = 3,
};

/* Receives library warnings and guest log messages; msg is valid during the call. */
typedef void (*sbx_log_fn)(void *ctx, enum sbx_log_level level, const char *msg);

/* ---- Versions ----------------------------------------------------------------- */
#define SBX_VERSION_STRING_MAX 32 /* bytes of sbx_version.string, NUL included */

/* A snapbox release and the guest ABI version it speaks. Fixed layout: it is
 * embedded in struct sbx_snapshot_info and never grows. */
struct sbx_version {
    uint32_t major, minor, patch;
    uint32_t abi; /* version of the guest ABI (sbx_abi.h) */
    char string[SBX_VERSION_STRING_MAX]; /* "MAJOR.MINOR.PATCH", NUL-terminated */
};

enum sbx_version_policy {
    SBX_VERSION_EXACT = 0,   /* default: same major.minor.patch and ABI */
    SBX_VERSION_RELAXED = 1, /* same major.minor and ABI, guest patch >= host patch */
    SBX_VERSION_ABI = 2,     /* any guest whose note carries this host's ABI version */
};

/* The library's version at run time: SBX_VERSION_NUMBER and SBX_VERSION_STRING
 * of the libsnapbox actually linked, which may be newer than the header. */
SBX_API unsigned sbx_version_number(void);
SBX_API const char *sbx_version_string(void);

/* This host's version (from the VERSION file) and ABI. */
SBX_API void sbx_host_version(struct sbx_version *out);

/* 0 if the guest ELF's version is acceptable to host under policy, else
 * SBX_E_VERSION with both versions and "rebuild the guest" in diag
 * (SBX_E_INVAL for an unknown policy). Snapshots: sbx_snapshot_check_compat. */
SBX_API int sbx_version_check(const struct sbx_version *host, const struct sbx_version *guest,
                      enum sbx_version_policy policy, const char *what, struct sbx_diag *diag);

/* ---- Guests (ELF files) ------------------------------------------------------- */
struct sbx_guest;

struct sbx_load_opts {
    size_t sz;          /* sizeof(struct sbx_load_opts): use SBX_OPTS */
    enum sbx_version_policy policy;
    bool require_note;  /* reject a guest without a version note */
    sbx_log_fn log;     /* optional: warnings (e.g. "no version note") */
    void *log_ctx;
};

enum sbx_note_source {
    SBX_NOTE_NONE = 0,
    SBX_NOTE_FROM_PHDR = 1,    /* found through a PT_NOTE program header */
    SBX_NOTE_FROM_SECTION = 2, /* found through an SHT_NOTE section header only */
};

/* Read through a pointer into the guest handle: the library owns the
 * storage, so fields may be appended later without a size field. */
struct sbx_segment {
    uint64_t vaddr, memsz, offset, filesz;
    uint32_t flags; /* PF_R | PF_W | PF_X */
};

/* Read and validate an ELF guest (ELF64, x86-64, ET_EXEC, little-endian,
 * PT_LOAD segments inside the guest image range) and find its version note.
 * Does not apply the version policy: see sbx_guest_check_version. */
SBX_API int sbx_guest_open(const char *path, struct sbx_guest **out, struct sbx_diag *diag);

/* Apply opts' version policy to an opened guest. A guest without a note is
 * accepted with a warning through opts->log unless opts->require_note. */
SBX_API int sbx_guest_check_version(const struct sbx_guest *g, const struct sbx_load_opts *opts,
                            struct sbx_diag *diag);

/* sbx_guest_open followed by sbx_guest_check_version; opts may be NULL. */
SBX_API int sbx_guest_load(const char *path, const struct sbx_load_opts *opts, struct sbx_guest **out,
                   struct sbx_diag *diag);

SBX_API void sbx_guest_free(struct sbx_guest *g);

SBX_API const char *sbx_guest_path(const struct sbx_guest *g);
SBX_API uint64_t sbx_guest_entry(const struct sbx_guest *g);
SBX_API size_t sbx_guest_segment_count(const struct sbx_guest *g);
/* The i-th PT_LOAD segment; NULL if i is out of range. Valid while g lives. */
SBX_API const struct sbx_segment *sbx_guest_segment(const struct sbx_guest *g, size_t i);
/* Where the version note was found; fills *out when it was. */
SBX_API enum sbx_note_source sbx_guest_note(const struct sbx_guest *g, struct sbx_version *out);
/* XXH3-64 of the whole ELF file. */
SBX_API uint64_t sbx_guest_hash(const struct sbx_guest *g);

/* ---- Values --------------------------------------------------------------------- */
enum sbx_type {
    SBX_T_VOID = 0, /* return type only */
    SBX_T_I32 = 1,
    SBX_T_I64 = 2,
    SBX_T_U64 = 3,
    SBX_T_F64 = 4,
    SBX_T_BOOL = 5,
    SBX_T_STR = 6,   /* UTF-8 bytes, not necessarily NUL-terminated */
    SBX_T_BYTES = 7,
};

/* Limits of a function signature, for guest and host functions alike. */
#define SBX_MAX_ARGS 8u  /* arguments a function takes at most */
#define SBX_MAX_NAME 64u /* bytes of a function name at most: [A-Za-z0-9_], 1..64 */

/* A typed value, as arguments and results. An array element of a call's
 * arguments: its layout is fixed and never grows. */
struct sbx_value {
    enum sbx_type type;
    union {
        int32_t i32;
        int64_t i64;
        uint64_t u64;
        double f64;
        bool b;
        struct {
            const void *ptr; /* STR: UTF-8, not necessarily NUL-terminated */
            size_t len;
        } buf;
    } u;
};

/* Name of a type ("i32", "str", ...); "?" for an unknown code. */
SBX_API const char *sbx_type_name(enum sbx_type t);

/* ---- Sandboxes -------------------------------------------------------------------- */
struct sbx_sandbox;

/* A host function the guest may call by name. Write the result into *ret,
 * whose type is preset to the declared return type; a STR/BYTES result's
 * memory must stay valid until the callback returns (snapbox copies it).
 * Return 0, or a negative value that the guest receives as the call's status. */
typedef int (*sbx_host_cb)(void *ctx, const struct sbx_value *args, size_t nargs,
                           struct sbx_value *ret);

/* A set of host functions, built once and given to any number of sandboxes
 * through sbx_config.host_fns. A sandbox holds a reference to the set, so
 * the caller may free it right after creating sandboxes; the set lives until
 * the last of them is destroyed. A set that a sandbox uses is frozen: adding
 * to it fails with SBX_E_BUSY. Build a set in one thread; once frozen it may
 * be shared by sandboxes in any number of threads. */
struct sbx_host_fns;

SBX_API int sbx_host_fns_new(struct sbx_host_fns **out, struct sbx_diag *diag);
/* Add name (1..SBX_MAX_NAME characters of [A-Za-z0-9_], copied) returning
 * ret and taking nargs (at most SBX_MAX_ARGS) arguments of types args[]
 * (copied; no SBX_T_VOID). fn(ctx, ...) is called for each guest call.
 * SBX_E_INVAL for a bad name or signature or a name already in the set. */
SBX_API int sbx_host_fns_add(struct sbx_host_fns *h, const char *name, enum sbx_type ret,
                             size_t nargs, const enum sbx_type *args, sbx_host_cb fn, void *ctx,
                             struct sbx_diag *diag);
SBX_API size_t sbx_host_fns_count(const struct sbx_host_fns *h);
/* Drop the caller's reference; NULL is ignored. */
SBX_API void sbx_host_fns_free(struct sbx_host_fns *h);

/* How a sandbox restored from a template (sbx_sandbox_from_template) holds
 * its memory and how sbx_sandbox_reset puts it back. */
enum sbx_mem_mode {
    SBX_MEM_DEFAULT = 0, /* SBX_MEM_COPY: it measured faster (bench/, README) */
    /* Private anonymous memory; restore copies the template's non-zero pages
     * in, reset copies back only the pages the guest or host wrote. Calls run
     * on memory that is already faulted in. */
    SBX_MEM_COPY = 1,
    /* A private copy-on-write mapping of the template; restore copies
     * nothing, reset drops the written pages. Every page the guest touches
     * after a restore or reset costs a page fault. */
    SBX_MEM_COW = 2,
};

/* Guest memory: a multiple of 2 MiB from SBX_MEM_SIZE_MIN to SBX_MEM_SIZE_MAX. */
#define SBX_MEM_SIZE_MIN (UINT64_C(4) << 20)
#define SBX_MEM_SIZE_MAX (UINT64_C(1) << 30)
#define SBX_DEFAULT_MEM_SIZE (UINT64_C(8) << 20)
#define SBX_DEFAULT_DEADLINE_MS 1000u
#define SBX_DEFAULT_MAX_LOG_PER_CALL 1000u

struct sbx_config {
    size_t sz;               /* sizeof(struct sbx_config): use SBX_OPTS */
    uint64_t mem_size;       /* 0: SBX_DEFAULT_MEM_SIZE; see SBX_MEM_SIZE_MIN */
    uint32_t deadline_ms;    /* per call (and for init); 0: SBX_DEFAULT_DEADLINE_MS */
    /* Signal sent to the calling thread to interrupt KVM_RUN at the deadline;
     * 0 means SIGRTMIN+1. It is reserved for snapbox in threads that call
     * sandboxes: during a call it is blocked in the thread and unblocked only
     * inside KVM_RUN, so it never runs a handler, works whatever the thread's
     * mask and the signal's disposition, and never interrupts host functions;
     * one that the timer sent is taken back before the call returns. */
    int deadline_signal;
    sbx_log_fn log;          /* guest log messages and library warnings; may be NULL */
    void *log_ctx;
    /* Functions the guest may call; NULL for none. The sandbox holds a
     * reference (see struct sbx_host_fns): the caller may free its own. */
    const struct sbx_host_fns *host_fns;
    enum sbx_mem_mode mem_mode; /* templates only; see enum sbx_mem_mode */
    /* Guest log messages passed to log per call (and per initialisation);
     * the rest are dropped and counted in one warning at the end of the call,
     * so a guest that logs endlessly costs neither host memory nor a flood.
     * 0: SBX_DEFAULT_MAX_LOG_PER_CALL. */
    uint32_t max_log_per_call;
    /* Bytes of guest stack for a guest created from an ELF file (a snapshot
     * keeps the stack it was made with): 0 or at most SBX_DEFAULT_STACK_SIZE
     * gives the default stack below the image; a larger one, a multiple of
     * 4 KiB up to SBX_MAX_STACK_SIZE, goes above the image, below the heap,
     * with its own guard page. */
    uint64_t stack_size;
    /* Bytes of the exchange area that carries call arguments and results
     * (its header included): 0 or at most SBX_DEFAULT_XCHG_SIZE gives the
     * default one below the image; a larger one, a multiple of 4 KiB up to
     * SBX_MAX_XCHG_SIZE, goes above the image. Kept by snapshots. */
    uint64_t xchg_size;
    /* Core dumps: when a call or the initialisation ends in a guest fault,
     * an abort or a timeout, an ELF core file of the guest (registers at the
     * fault in an NT_PRSTATUS note, non-zero memory at the guest's own
     * addresses; `gdb GUEST.elf FILE`) is written atomically into this
     * directory as NAME-YYYYMMDDTHHMMSSZ-PID-N.core, NAME from the guest or
     * snapshot file, and the error message names it (or says why none was
     * written). NULL (the default): no core dumps. */
    const char *core_dump_dir;
    /* Bytes of one core file at most; memory past the limit (in address
     * order: system pages, stack, image, heap) is left out, and the message
     * says so. 0: SBX_DEFAULT_CORE_MAX_BYTES. */
    uint64_t core_dump_max_bytes;
    /* .core files core_dump_dir may hold; when it holds this many, no core
     * is written (nothing is deleted). 0: SBX_DEFAULT_CORE_MAX_FILES. */
    uint32_t core_dump_max_files;
    /* "127.0.0.1:PORT" (or "[::1]:PORT"): a debugging session. The
     * sandbox's first run (sbx_sandbox_create: before the guest's first
     * instruction; a restored sandbox: the first call's entry) waits for gdb
     * to connect there (`target remote 127.0.0.1:PORT`) and serves the GDB
     * remote protocol: registers, memory, software and hardware breakpoints,
     * single step, continue, detach, kill. Loopback addresses only (another
     * is SBX_E_INVAL). The deadline does not apply while gdb is attached, and
     * such a sandbox cannot be reset (SBX_E_INVAL): it is for debugging only.
     * NULL (the default): none. */
    const char *gdb_addr;
};
#define SBX_DEFAULT_CORE_MAX_BYTES (UINT64_C(256) << 20)
#define SBX_DEFAULT_CORE_MAX_FILES 16u
#define SBX_DEFAULT_XCHG_SIZE (256ull << 10)
#define SBX_MAX_XCHG_SIZE (64ull << 20)
#define SBX_DEFAULT_STACK_SIZE (700ull << 10)
#define SBX_MAX_STACK_SIZE (256ull << 20)

/* Create a sandbox: allocate guest memory, load the guest's segments, build
 * page tables, GDT and IDT, create the KVM VM and vCPU, and run the guest's
 * initialisation until it reports ready. The guest must have passed
 * sbx_guest_check_version. cfg may be NULL for defaults. */
SBX_API int sbx_sandbox_create(const struct sbx_guest *g, const struct sbx_config *cfg,
                       struct sbx_sandbox **out, struct sbx_diag *diag);

/* Call guest function name with nargs typed arguments. On success *ret holds
 * the result; a STR/BYTES result points into memory owned by the sandbox,
 * valid until the next call or sbx_sandbox_destroy. After an abort, a fault
 * or a timeout the sandbox is poisoned and every later call fails with
 * SBX_E_POISONED. A host function that calls into its own sandbox gets
 * SBX_E_BUSY. */
SBX_API int sbx_sandbox_call(struct sbx_sandbox *s, const char *name, const struct sbx_value *args,
                     size_t nargs, struct sbx_value *ret, struct sbx_diag *diag);

SBX_API bool sbx_sandbox_poisoned(const struct sbx_sandbox *s);

/* A guest function's signature, as the guest registered it. Set out->sz
 * (SBX_OPTS) before asking; name and args point into the sandbox or snapshot
 * it came from and stay valid while that lives. */
struct sbx_func_info {
    size_t sz;                 /* sizeof(struct sbx_func_info): use SBX_OPTS */
    const char *name;          /* NUL-terminated */
    const enum sbx_type *args; /* nargs argument types */
    size_t nargs;
    enum sbx_type ret;
};

SBX_API size_t sbx_sandbox_function_count(const struct sbx_sandbox *s);
/* 0 and *out filled, or SBX_E_INVAL if i is out of range or out->sz is bad. */
SBX_API int sbx_sandbox_function(const struct sbx_sandbox *s, size_t i, struct sbx_func_info *out,
                                 struct sbx_diag *diag);
/* The function named name, or SBX_E_NO_FUNC. */
SBX_API int sbx_sandbox_find_function(const struct sbx_sandbox *s, const char *name,
                                      struct sbx_func_info *out, struct sbx_diag *diag);

SBX_API void sbx_sandbox_destroy(struct sbx_sandbox *s);

/* ---- Host-process hardening ---------------------------------------------------
 * Confine the calling thread (and threads it creates afterwards) with a
 * seccomp filter that allows only what restoring, calling and resetting
 * sandboxes needs (docs/security.md lists it): KVM ioctls, memory, futexes,
 * the deadline timer and its signal, reads and writes of open files, opening
 * /dev/kvm, exit. Call it after templates, pools and log files are set up.
 * Anything else kills the process, or fails with EPERM with
 * SBX_SECCOMP_ERRNO. It cannot be undone. */
#define SBX_SECCOMP_ERRNO 1u
SBX_API int sbx_seccomp_confine(unsigned flags, struct sbx_diag *diag);

/* ---- Snapshots -------------------------------------------------------------------
 * A snapshot freezes an idle sandbox (after initialisation or after any call):
 * its memory, vCPU state and function table. Snapshot files are single,
 * self-describing files (docs/snapshot-format.md); restoring one never needs
 * the guest ELF. Files are untrusted: every size, offset and checksum is
 * verified before use.
 */
struct sbx_snapshot;

struct sbx_snapshot_opts {
    size_t sz; /* sizeof(struct sbx_snapshot_opts): use SBX_OPTS */
    bool hc;   /* LZ4HC: smaller files, slower capture */
};

/* Limits on untrusted files; 0 picks the default. A file over a limit is
 * rejected with SBX_E_LIMIT before more of it is read. */
#define SBX_GUEST_PAGE_SIZE 4096u /* the unit of sbx_snapshot_info.nonzero_pages */
#define SBX_SNAP_DEFAULT_MAX_FILE (UINT64_C(2) << 30) /* any valid 1 GiB guest fits */
#define SBX_SNAP_DEFAULT_MAX_CHUNKS (SBX_MEM_SIZE_MAX / SBX_GUEST_PAGE_SIZE)

struct sbx_snapshot_open_opts {
    size_t sz;                      /* sizeof(struct sbx_snapshot_open_opts): use SBX_OPTS */
    /* For the guest the snapshot recorded, applied by every restore of it
     * (sbx_sandbox_restore, sbx_template_from_snapshot, sbx_template_open);
     * opening, info and verify describe a file of any version. */
    enum sbx_version_policy policy;
    uint32_t max_chunks;            /* 0: SBX_SNAP_DEFAULT_MAX_CHUNKS */
    uint64_t max_file_size;         /* bytes; 0: SBX_SNAP_DEFAULT_MAX_FILE */
    /* Guest memory the header may announce; 0: SBX_MEM_SIZE_MAX or half of
     * this machine's physical memory, whichever is smaller. */
    uint64_t max_mem_size;
    uint64_t max_nonzero_pages;     /* stored pages; 0: max_mem_size / SBX_GUEST_PAGE_SIZE */
    bool require_note;              /* restore refuses a guest without a version note */
};

/* Set sz (SBX_OPTS) before sbx_snapshot_info fills it. */
struct sbx_snapshot_info {
    size_t sz; /* sizeof(struct sbx_snapshot_info): use SBX_OPTS */
    uint32_t format;
    struct sbx_version host;  /* snapbox that wrote it: information only */
    struct sbx_version guest; /* valid if guest_has_note */
    bool guest_has_note;
    uint64_t guest_elf_hash;
    bool hc;
    char cpu_vendor[13];
    uint64_t mem_size, file_size, nonzero_pages, stored_bytes;
    uint32_t nchunks;
    size_t nfuncs;
    uint32_t layout_abi;      /* memory layout ABI of the guest image */
    uint32_t nmsrs, ncpuid;   /* recorded MSRs and CPUID entries */
    uint32_t xsave_size;      /* bytes of the recorded XSAVE area */
};

/* Freeze an idle sandbox into an in-memory snapshot. The sandbox stays usable. */
SBX_API int sbx_snapshot_take(struct sbx_sandbox *s, const struct sbx_snapshot_opts *opts,
                              struct sbx_snapshot **out, struct sbx_diag *diag);

/* Write to path atomically: an unnamed file (O_TMPFILE) in the same
 * directory, fsync'd, named, renamed over path, directory fsync'd. On any
 * failure path keeps its old content and nothing is left beside it; a
 * process killed while writing leaves nothing either, except in the instant
 * between naming and renaming (a complete "PATH.tmp.PID.N"). File systems
 * without O_TMPFILE get a named temporary file instead. */
SBX_API int sbx_snapshot_write(const struct sbx_snapshot *snap, const char *path,
                               struct sbx_diag *diag);

/* Read and check only the header and its sections (magic, format version,
 * checksums, sizes, opts' limits, vCPU records, function table). The writer's
 * and the guest's versions are not judged here (see
 * sbx_snapshot_check_compat). Enough for sbx_snapshot_info and the function
 * table; not for restore. opts may be NULL. */
SBX_API int sbx_snapshot_open_header(const char *path, const struct sbx_snapshot_open_opts *opts,
                                     struct sbx_snapshot **out, struct sbx_diag *diag);

/* Read the whole file: header checks first, then the chunk index and every
 * chunk's checksum. The result can be restored any number of times. */
SBX_API int sbx_snapshot_open(const char *path, const struct sbx_snapshot_open_opts *opts,
                              struct sbx_snapshot **out, struct sbx_diag *diag);

/* Whether this host may restore snap under policy, decided from the header
 * alone: the format, the memory layout ABI and the guest's recorded version
 * (require_note: a guest without a version note is refused). 0, or
 * SBX_E_VERSION / SBX_E_NO_NOTE / SBX_E_SNAP_FORMAT with the file, both
 * versions, the policy and the fix ("recreate the snapshot") in diag;
 * SBX_E_INVAL for an unknown policy. The writer's version is not judged. */
SBX_API int sbx_snapshot_check_compat(const struct sbx_snapshot *snap,
                                      enum sbx_version_policy policy, bool require_note,
                                      struct sbx_diag *diag);

/* Decompress every chunk into scratch memory and check its size (no KVM). */
SBX_API int sbx_snapshot_verify(const struct sbx_snapshot *snap, struct sbx_diag *diag);

/* Write the snapshot's guest as an ELF core file at path (atomically, as
 * sbx_snapshot_write): the recorded registers and the non-zero memory, so
 * that `gdb GUEST.elf path` shows what was frozen. No KVM needed; snap must
 * be complete (sbx_snapshot_open). max_bytes: 0 for
 * SBX_DEFAULT_CORE_MAX_BYTES; memory past it is left out, and *truncated
 * (may be NULL) says so. */
SBX_API int sbx_snapshot_write_core(const struct sbx_snapshot *snap, const char *path,
                                   uint64_t max_bytes, bool *truncated, struct sbx_diag *diag);

/* Fill *out up to out->sz; SBX_E_INVAL if out->sz is bad. */
SBX_API int sbx_snapshot_info(const struct sbx_snapshot *snap, struct sbx_snapshot_info *out,
                              struct sbx_diag *diag);
/* The i-th guest function; name and args valid while snap lives. 0, or
 * SBX_E_INVAL if i is out of range or out->sz is bad. */
SBX_API int sbx_snapshot_function(const struct sbx_snapshot *snap, size_t i,
                                  struct sbx_func_info *out, struct sbx_diag *diag);
SBX_API void sbx_snapshot_free(struct sbx_snapshot *snap);

/* Create a sandbox in the state the snapshot froze, after
 * sbx_snapshot_check_compat under the policy and require_note it was opened
 * with (a snapshot taken in this process: the ABI policy; its guest passed the
 * load policy already). cfg supplies the deadline, log callback and host
 * functions; the memory size is the snapshot's, and cfg->mem_size, when set,
 * is a limit: a larger snapshot gets SBX_E_LIMIT. */
SBX_API int sbx_sandbox_restore(const struct sbx_snapshot *snap, const struct sbx_config *cfg,
                                struct sbx_sandbox **out, struct sbx_diag *diag);

/* ---- Templates and pools ------------------------------------------------------------
 * The request-time path. A template is a snapshot decoded once into host
 * memory that is sealed (a memfd that nobody can write, resize or unseal), so
 * any number of sandboxes in any number of threads can restore from it.
 * A pool holds blank VMs (KVM VM, vCPU, guest memory mapped but not faulted
 * in, so a pooled VM costs the same whatever its memory size and holds
 * resident only what its sandbox uses), created ahead of requests, so a
 * restore does not pay for KVM_CREATE_VM. A ready pool (below) goes further:
 * its sandboxes are restored, with their working set faulted in. A sandbox restored from a template can be reset to it after each
 * request; the reset's cost grows with the pages written, not with memory.
 */
struct sbx_template;
struct sbx_pool;

/* Read, check and decode the snapshot at path (as sbx_snapshot_open does). */
SBX_API int sbx_template_open(const char *path, const struct sbx_snapshot_open_opts *opts,
                              struct sbx_template **out, struct sbx_diag *diag);
/* The same from a snapshot already in memory; snap may be freed afterwards. */
SBX_API int sbx_template_from_snapshot(const struct sbx_snapshot *snap, struct sbx_template **out,
                                       struct sbx_diag *diag);
SBX_API uint64_t sbx_template_mem_size(const struct sbx_template *t);
/* Drop the caller's reference. Sandboxes restored from t hold their own, so
 * t lives on until the last of them is destroyed. */
SBX_API void sbx_template_free(struct sbx_template *t);

/* A pool of blank VMs with mem_size bytes of memory (see sbx_config.mem_size);
 * count of them are created now. Safe to use from several threads. */
SBX_API int sbx_pool_create(uint64_t mem_size, size_t count, struct sbx_pool **out,
                            struct sbx_diag *diag);
/* Create VMs until the pool holds count of them (off the request path). */
SBX_API int sbx_pool_fill(struct sbx_pool *p, size_t count, struct sbx_diag *diag);
SBX_API size_t sbx_pool_available(struct sbx_pool *p);
SBX_API void sbx_pool_free(struct sbx_pool *p);

/* A sandbox in the template's state. With a pool whose memory size matches
 * the template's, it takes a ready VM from it (each VM is used once: reuse a
 * sandbox through sbx_sandbox_reset); otherwise, or when the pool is empty,
 * it creates one. cfg as for sbx_sandbox_restore; cfg->mem_mode picks copy or
 * copy-on-write memory. */
SBX_API int sbx_sandbox_from_template(const struct sbx_template *t, const struct sbx_config *cfg,
                                      struct sbx_pool *pool, struct sbx_sandbox **out,
                                      struct sbx_diag *diag);
/* Return a sandbox made by sbx_sandbox_from_template to the template's state:
 * the pages the guest (KVM dirty log) or the host (call arguments, results)
 * wrote, and the complete vCPU state (registers, MSRs, debug registers,
 * pending events, XCRs, XSAVE; docs/security.md), after draining any I/O or
 * MMIO access the last request left half-done. Clears poisoning. Nothing of
 * the previous request stays in guest memory or in the vCPU. SBX_E_INVAL for
 * other sandboxes, SBX_E_BUSY from inside a call. */
SBX_API int sbx_sandbox_reset(struct sbx_sandbox *s, struct sbx_diag *diag);

/* ---- Ready pools ----------------------------------------------------------------------
 * A ready pool holds sandboxes already restored from one template, so a request
 * takes one without any KVM call or copy and gives it back when done. Giving
 * back resets it (sbx_sandbox_reset), on the calling thread or on the pool's
 * thread; a sandbox whose reset fails is destroyed and the pool's thread makes
 * another in the background, so the pool keeps target sandboxes (ready or in
 * use). Takes beyond them restore more, up to max, and those are destroyed
 * when they come back.
 *
 * Density: a ready sandbox holds resident only the template's non-zero pages,
 * its working set and the page tables. The working set is the union of the
 * pages the first working_set_requests requests touched; sandboxes made after
 * that have it faulted in ahead of requests (MADV_POPULATE_WRITE), and a reset
 * returns pages outside it to the kernel instead of zeroing them.
 * Safe to use from any number of threads.
 */
struct sbx_ready_pool;

enum sbx_release_mode {
    SBX_RELEASE_DEFAULT = 0,    /* SBX_RELEASE_BACKGROUND */
    SBX_RELEASE_INLINE = 1,     /* release resets on the calling thread */
    SBX_RELEASE_BACKGROUND = 2, /* release queues the reset for the pool's thread */
};

#define SBX_READY_DEFAULT_TARGET 4u
#define SBX_READY_DEFAULT_WS_REQUESTS 8u

struct sbx_ready_pool_opts {
    size_t sz;                    /* sizeof(struct sbx_ready_pool_opts): use SBX_OPTS */
    /* For every sandbox (see sbx_sandbox_from_template); may be NULL. The pool
     * copies it, but what its pointers point to (log_ctx, core_dump_dir) must
     * stay valid while the pool lives: refills use them. */
    const struct sbx_config *cfg;
    size_t target;                /* sandboxes the pool keeps; 0: SBX_READY_DEFAULT_TARGET */
    /* Sandboxes alive at once (ready, taken or being reset); 0: no limit.
     * At the limit, take waits for a release. */
    size_t max;
    enum sbx_release_mode release;
    /* Requests whose touched pages make the working set; 0:
     * SBX_READY_DEFAULT_WS_REQUESTS. */
    uint32_t working_set_requests;
};

/* Make the pool and its first target sandboxes (on the calling thread, so an
 * error such as a CPU mismatch is reported here), then start its thread.
 * The pool holds a reference to t. */
SBX_API int sbx_ready_pool_create(const struct sbx_template *t, const struct sbx_ready_pool_opts *opts,
                                  struct sbx_ready_pool **out, struct sbx_diag *diag);
/* A sandbox in the template's state. A ready one costs no KVM call and no
 * copy. When none is ready, take waits up to timeout_ms for one that is being
 * reset or made; with none coming, or after the wait, it restores one on the
 * calling thread, unless the pool is at max: then it waits up to timeout_ms
 * and fails with SBX_E_TIMEOUT. Give it back with sbx_ready_pool_release, to
 * this pool. */
SBX_API int sbx_ready_pool_take(struct sbx_ready_pool *p, uint32_t timeout_ms,
                                struct sbx_sandbox **out, struct sbx_diag *diag);
/* Give back a sandbox taken from p, whatever its last call did (a fault or
 * a timeout included): it is reset before anyone takes it again, or
 * destroyed and replaced if the reset fails. One that leaves the pool above
 * target after its reset is destroyed (retired). With SBX_RELEASE_INLINE the
 * reset's error is returned (the sandbox is gone either way); otherwise 0.
 * SBX_E_INVAL for a sandbox of another pool, SBX_E_BUSY from inside a call. */
SBX_API int sbx_ready_pool_release(struct sbx_ready_pool *p, struct sbx_sandbox *s,
                                   struct sbx_diag *diag);

/* Set sz (SBX_OPTS) before sbx_ready_pool_stats fills it. */
struct sbx_ready_pool_stats {
    size_t sz;             /* sizeof(struct sbx_ready_pool_stats): use SBX_OPTS */
    size_t target, ready, taken, resetting;
    uint64_t takes;        /* sandboxes handed out */
    uint64_t misses;       /* of them, restored on the taker's thread: none was ready */
    uint64_t resets;       /* successful resets of released sandboxes */
    uint64_t replaced;     /* released sandboxes destroyed because their reset failed */
    uint64_t refills;      /* sandboxes the pool's thread made */
    uint64_t refill_failures;
    uint64_t working_set_pages; /* 0 until working_set_requests were recorded */
    uint64_t retired;      /* released sandboxes destroyed: the pool was above target */
    /* Guest memory of the ready sandboxes resident in this process, in
     * bytes (mincore), and the template's memory they share. */
    uint64_t ready_resident, template_resident;
};
SBX_API int sbx_ready_pool_stats(struct sbx_ready_pool *p, struct sbx_ready_pool_stats *out,
                                 struct sbx_diag *diag);
/* Wait until no reset is queued or running, no sandbox is being made, and
 * the pool holds target sandboxes (ready or taken): 0, or SBX_E_TIMEOUT
 * after timeout_ms. */
SBX_API int sbx_ready_pool_wait(struct sbx_ready_pool *p, uint32_t timeout_ms, struct sbx_diag *diag);
/* Stop the pool's thread and destroy the sandboxes it holds; drop its
 * template reference. Release every taken sandbox first: one still taken
 * is the caller's, to destroy with sbx_sandbox_destroy. */
SBX_API void sbx_ready_pool_free(struct sbx_ready_pool *p);

#ifdef __cplusplus
}
#endif

#endif
