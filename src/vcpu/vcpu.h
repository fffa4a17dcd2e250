/* vcpu.h - the KVM machine behind a sandbox: memory, x86 set-up, run loop. */
#ifndef SBX_VCPU_H
#define SBX_VCPU_H

#include <linux/kvm.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

#include "internal.h"
#include "sbx_abi.h"

#define SBX_MAX_LOG_MSG 4096u          /* longer guest log messages are truncated */
#define SBX_MAX_RESULT (16u << 20)     /* largest string/bytes a guest may return */

#define SBX_MAX_FUNCS SBX_ABI_MAX_FUNCS /* functions a sandbox holds: all a guest may register */

struct sbx_vm {
    int kvm_fd, vm_fd, vcpu_fd;
    struct kvm_run *run;
    size_t run_size;
    uint8_t *mem;
    uint64_t mem_size;
    uint64_t *dirty; /* KVM dirty-page bitmap, one bit per page; NULL if not logged */
    /* Pages the host wrote outside the exchange area (the guest's random
     * bytes), which KVM does not log; sbx_vm_get_dirty adds them. */
    uint64_t *host_dirty;
    uint64_t xchg_gpa, xchg_size; /* the exchange area (boot information page) */
    uint32_t xsave_size;          /* bytes of the vCPU's XSAVE area on this host */
};

/* A VM with nothing yet: no descriptors, the default exchange area. */
#define SBX_VM_EMPTY ((struct sbx_vm){ .kvm_fd = -1, .vm_fd = -1, .vcpu_fd = -1, \
                                       .xchg_gpa = SBX_LAYOUT_XCHG,          \
                                       .xchg_size = SBX_LAYOUT_XCHG_SIZE })

struct sbx_vm_opts {
    int memfd;      /* >= 0: memory is a private copy-on-write mapping of it */
    bool dirty_log; /* log guest writes, for sbx_sandbox_reset */
};

static inline size_t sbx_vm_dirty_words(const struct sbx_vm *vm)
{
    return (size_t)(vm->mem_size / SBX_PAGE_SIZE + 63) / 64;
}

/* Which thread a deadline timer signals: its id, and when it first used one
 * (a later thread may get the same id). */
struct sbx_thread_tag {
    pid_t tid;
    uint64_t born_ns;
};

struct sbx_deadline {
    timer_t timer;
    bool has_timer;
    struct sbx_thread_tag owner;
    pid_t pid;           /* process that created the timer */
    struct timespec end;
    bool run_mask_set;   /* run_mask is the vCPU's KVM_SET_SIGNAL_MASK */
    uint64_t run_mask;
};

/* A guest function's signature in API types: wire and file codes are
 * converted at the boundary (value.c), so sbx_func_info can point into it. */
struct sbx_func {
    char name[SBX_MAX_NAME + 1];
    enum sbx_type ret_type;
    uint8_t nargs;
    enum sbx_type arg_types[SBX_MAX_ARGS];
};

/* What a snapshot records about the guest a sandbox runs. */
struct sbx_guest_facts {
    bool has_note;
    struct sbx_version version; /* valid if has_note */
    uint64_t hash;              /* XXH3-64 of the ELF file */
};

/* host_fns.c: one host function, and the reference-counted set of them. */
struct sbx_host_fn {
    char name[SBX_MAX_NAME + 1];
    enum sbx_type ret;
    size_t nargs;
    enum sbx_type args[SBX_MAX_ARGS];
    sbx_host_cb fn;
    void *ctx;
};
struct sbx_host_fns {
    struct sbx_host_fn *fns;
    size_t n, cap;
    atomic_int refs;    /* the caller's, plus one per sandbox using the set */
    atomic_bool frozen; /* a sandbox uses it: no more adds */
};
/* A sandbox's reference: freezes the set. */
void sbx_host_fns_hold(const struct sbx_host_fns *h);
void sbx_host_fns_release(const struct sbx_host_fns *h);
const struct sbx_host_fn *sbx_host_fns_find(const struct sbx_host_fns *h, const char *name);

/* Owned by sandbox.c: other modules use the functions below. */
struct sbx_sandbox {
    struct sbx_vm vm;
    struct sbx_config cfg;
    const struct sbx_host_fns *host_fns; /* held reference to cfg.host_fns, or NULL */
    struct sbx_func funcs[SBX_MAX_FUNCS];
    size_t nfuncs;
    bool poisoned;
    bool restored;           /* restored or reset since the last call */
    atomic_bool in_call;     /* a call runs: a host function re-entering gets SBX_E_BUSY */
    uint32_t xchg_data_used; /* bytes of xchg.data holding this call's host-written data */
    struct sbx_deadline deadline; /* the calling thread's timer, kept between calls */
    uint32_t log_count;      /* guest log messages in this call, passed or dropped */
    uint32_t xchg_dirty_hi;  /* most xchg.data bytes the host wrote since restore or reset */
    const struct sbx_template *tpl; /* set when restored from a template: reset goes back to it */
    struct sbx_vcpu_state *reset_state; /* the complete vCPU state reset puts back */
    uint8_t *result;         /* STR/BYTES results of the last call */
    size_t result_cap;
    struct sbx_guest_facts guest; /* what a snapshot records about the guest */
    const void *owner;       /* the ready pool it belongs to, or NULL */
    /* Pages a reset zeroes in place (the working set); a written page
     * outside it that the template does not store goes back to the kernel.
     * NULL: every written page is zeroed in place. */
    uint64_t *keep;
    bool trimmed;            /* pages outside keep were returned once */
    struct sbx_gdb *gdb;     /* src/debug/gdbstub.c: a gdb session (cfg.gdb_addr), or NULL */
    char name[48];           /* the guest or snapshot file's name, for core files */
    char *core_dir;          /* the copy of cfg.core_dump_dir that cfg points to */
};

/* template.c: drop a sandbox's reference; the last one frees the template. */
void sbx_template_release(const struct sbx_template *t);

/* sandbox.c: SBX_E_LIMIT unless mem_size is a valid guest memory size. */
int sbx_check_mem_size(uint64_t mem_size, struct sbx_diag *diag);
/* sandbox.c: give a vCPU that never ran the state st (CPUID included) and
 * keep what it then holds as the state reset returns to. */
int sbx_sandbox_start_state(struct sbx_sandbox *s, const struct sbx_vcpu_state *st,
                            struct sbx_diag *diag);
/* sandbox.c: the guest's function table (checked by the caller: names and
 * signatures by the one rule, no duplicates); SBX_E_LIMIT over SBX_MAX_FUNCS. */
int sbx_sandbox_set_functions(struct sbx_sandbox *s, const struct sbx_func *funcs, size_t n,
                              struct sbx_diag *diag);
const struct sbx_func *sbx_sandbox_functions(const struct sbx_sandbox *s, size_t *n);
void sbx_sandbox_set_guest_facts(struct sbx_sandbox *s, const struct sbx_guest_facts *facts);
const struct sbx_guest_facts *sbx_sandbox_guest_facts(const struct sbx_sandbox *s);
/* Describe f into the caller's out, up to out->sz (sbx_sandbox_function and
 * sbx_snapshot_function). */
int sbx_func_info_out(const struct sbx_func *f, struct sbx_func_info *out, struct sbx_diag *diag);
/* sandbox.c: a bit per page of s's memory that may be non-zero (snapshots,
 * core files), or NULL: every page may be. */
uint64_t *sbx_sandbox_touched_pages(const struct sbx_sandbox *s);
/* sandbox.c: name s after the file it came from (core file names). */
void sbx_sandbox_set_name(struct sbx_sandbox *s, const char *path);
/* sandbox.c: tell the guest it was restored or reset (xchg.restored). */
void sbx_sandbox_mark_restored(struct sbx_sandbox *s);
/* sandbox.c: s came from t and keeps the reference to it that the caller
 * took (sbx_template_hold); destroy releases it, reset goes back to t. */
void sbx_sandbox_set_template(struct sbx_sandbox *s, const struct sbx_template *t);
/* sandbox.c: the ready pool that owns s (NULL: none), and the pages its
 * resets keep resident (the sandbox takes the bitmap; NULL: all). */
void sbx_sandbox_set_owner(struct sbx_sandbox *s, const void *owner);
const void *sbx_sandbox_owner(const struct sbx_sandbox *s);
void sbx_sandbox_set_keep(struct sbx_sandbox *s, uint64_t *keep);
void sbx_sandbox_set_trimmed(struct sbx_sandbox *s);
/* sandbox.c: a reset finished: on success the sandbox is clean and tells the
 * guest it was restored; a half reset poisons it until a reset succeeds. */
void sbx_sandbox_after_reset(struct sbx_sandbox *s, bool ok);
/* sandbox.c: allocate a sandbox with a resolved configuration, no VM yet. */
int sbx_sandbox_alloc(const struct sbx_config *cfg, uint64_t mem_size, struct sbx_sandbox **out,
                      struct sbx_diag *diag);
/* sandbox.c: the same, with a fresh VM whose memory faults in on first touch. */
int sbx_sandbox_new(const struct sbx_config *cfg, uint64_t mem_size, struct sbx_sandbox **out,
                    struct sbx_diag *diag);

struct sbx_cpu_facts {
    char vendor[12];
    uint32_t features[4]; /* CPUID leaf 1 ecx, edx; leaf 7 ebx, ecx */
    uint64_t xcr0_supported;
};

/* The complete guest-visible vCPU state: what a snapshot records and what
 * restore and reset put back (docs/security.md lists it). There is no
 * in-kernel local APIC (no KVM_CREATE_IRQCHIP), so no APIC state exists. */
#define SBX_MAX_MSRS 160u   /* MSRs of the host's state list (kvm.c) */
#define SBX_MAX_CPUID 80u   /* CPUID entries the guest sees */
#define SBX_XSAVE_MAX 16384u /* XSAVE area bytes (KVM_GET_XSAVE2 may exceed 4096) */
struct sbx_vcpu_state {
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_debugregs debugregs;
    struct kvm_vcpu_events events;
    struct kvm_xcrs xcrs;
    uint32_t nmsrs;      /* sorted by index; IA32_TSC holds the guest's TSC value */
    struct kvm_msr_entry msrs[SBX_MAX_MSRS];
    uint32_t ncpuid;     /* the CPUID the guest saw (cpuid.c) */
    struct kvm_cpuid_entry2 cpuid[SBX_MAX_CPUID];
    uint32_t xsave_size; /* bytes of xsave[] in use, a multiple of 4, >= 4096 */
    uint32_t xsave[SBX_XSAVE_MAX / 4];
};

/* KVM's ioctl structs end in flexible arrays; these unions give them room
 * (a struct member after a flexible array is not C). */
union sbx_kvm_msrs {
    struct kvm_msrs h;
    uint8_t room[sizeof(struct kvm_msrs) + SBX_MAX_MSRS * sizeof(struct kvm_msr_entry)];
};
union sbx_kvm_cpuid {
    struct kvm_cpuid2 h;
    uint8_t room[sizeof(struct kvm_cpuid2) + SBX_MAX_CPUID * sizeof(struct kvm_cpuid_entry2)];
};

/* pool.c: move a ready VM of mem_size bytes out of the pool into *vm;
 * false if it has none. */
bool sbx_pool_take(struct sbx_pool *p, uint64_t mem_size, struct sbx_vm *vm);

/* kvm.c */
int sbx_vm_cpu_facts(const struct sbx_vm *vm, struct sbx_cpu_facts *out, struct sbx_diag *diag);
/* The same from an open /dev/kvm, without a VM. */
int sbx_kvm_cpu_facts(int kvm_fd, struct sbx_cpu_facts *out, struct sbx_diag *diag);
int sbx_vm_create(struct sbx_vm *vm, uint64_t mem_size, const struct sbx_vm_opts *o,
                  struct sbx_diag *diag);
/* Replace the VM's memory, in place, with a private mapping of memfd. */
int sbx_vm_map_cow(struct sbx_vm *vm, int memfd, struct sbx_diag *diag);
/* Fetch and clear the pages the guest wrote since the last fetch into vm->dirty. */
int sbx_vm_get_dirty(struct sbx_vm *vm, struct sbx_diag *diag);
void sbx_vm_destroy(struct sbx_vm *vm);
int sbx_vm_ioctl_fail(struct sbx_diag *diag, const char *what);

/* memory.c */
/* Host pointer to guest range [gpa, gpa + len), or NULL if any of it lies outside memory. */
void *sbx_mem_at(const struct sbx_vm *vm, uint64_t gpa, uint64_t len);
/* memory.c: note a host write outside the exchange area for the next reset. */
void sbx_mem_mark_host_write(struct sbx_vm *vm, uint64_t gpa, uint64_t len);
void sbx_mem_load_segments(struct sbx_vm *vm, const struct sbx_guest *g);
/* Where a guest's regions go in mem_size bytes of memory (sbx_abi.h). */
struct sbx_layout {
    uint64_t image_end;  /* page-aligned end of the last segment */
    uint64_t extra_pt;   /* page tables for 4 KiB pages past the first 2 MiB */
    uint64_t nextra_pt;
    uint64_t stack_guard, stack_top;
    uint64_t xchg, xchg_size;
    uint64_t heap_start;
};
/* SBX_E_LIMIT, naming the image, when it and the stack leave no heap in
 * mem_size. stack_size as struct sbx_config's. */
int sbx_layout_for(const struct sbx_guest *g, uint64_t mem_size, uint64_t stack_size,
                   uint64_t xchg_size, struct sbx_layout *l, struct sbx_diag *diag);
/* The boot information page the host wrote (guest memory: the guest may
 * have changed it; use it for messages, not for safety). */
static inline const struct sbx_boot_info *sbx_boot_info(const struct sbx_vm *vm)
{
    return (const struct sbx_boot_info *)(vm->mem + SBX_LAYOUT_BOOT);
}
/* The memory a guest starts from: its segments, page tables, GDT, IDT and the
 * exchange-area header. Needs no KVM: vm->mem may be any zeroed buffer. */
int sbx_mem_prepare(struct sbx_vm *vm, const struct sbx_guest *g, uint64_t stack_size,
                    uint64_t xchg_size, struct sbx_diag *diag);
static inline struct sbx_xchg *sbx_xchg(const struct sbx_vm *vm)
{
    return (struct sbx_xchg *)(vm->mem + vm->xchg_gpa);
}
static inline uint64_t sbx_xchg_data_gpa(const struct sbx_vm *vm)
{
    return vm->xchg_gpa + SBX_XCHG_HEADER_SIZE;
}
static inline uint64_t sbx_xchg_data_size(const struct sbx_vm *vm)
{
    return vm->xchg_size - SBX_XCHG_HEADER_SIZE;
}
/* memory.c: take the exchange area from a restored guest's boot page, which
 * came from an untrusted file: checked against memory first. */
int sbx_vm_adopt_boot_info(struct sbx_vm *vm, struct sbx_diag *diag);

/* memory.c: a bit per page of anonymous guest memory that was ever touched
 * (the rest reads as zero); malloc'd, or NULL when the kernel will not say. */
uint64_t *sbx_vm_touched_pages(const struct sbx_vm *vm);
/* Guest memory is left out of host core dumps and of fork()ed children. */
void sbx_mem_private(void *mem, uint64_t size);

/* cpuid.c: what KVM supports (free the result), and the CPUID a guest sees,
 * built from it into st->cpuid; sbx_cpuid_set gives st's CPUID to the vCPU. */
#define SBX_MAX_CPUID_KVM 256u
int sbx_cpuid_supported(int kvm_fd, struct kvm_cpuid2 **out, struct sbx_diag *diag);
int sbx_cpuid_for_guest(int kvm_fd, struct sbx_vcpu_state *st, struct sbx_diag *diag);
int sbx_cpuid_set(const struct sbx_vm *vm, const struct sbx_vcpu_state *st, struct sbx_diag *diag);

/* msr.c: the MSRs of a guest's state on this host, sorted (list and n may be
 * NULL to only probe). */
int sbx_msr_list(const struct sbx_vm *vm, const uint32_t **list, uint32_t *n,
                 struct sbx_diag *diag);

/* x86.c: one exception stub per vector at SBX_LAYOUT_FAULT_STUBS, each
 * SBX_FAULT_STUB_SIZE bytes (run.c reads a fault's frame through them). */
#define SBX_FAULT_VECTORS 32u
#define SBX_FAULT_STUB_SIZE 16u
/* The code of vector v's stub (its length); keep_rax pushes %rax first, so
 * the host can undo the exception (the gdb stub's breakpoints, gdbstub.c). */
size_t sbx_x86_fault_stub(uint32_t v, bool keep_rax, uint8_t out[SBX_FAULT_STUB_SIZE]);
void sbx_x86_build_tables(struct sbx_vm *vm, const struct sbx_guest *g, const struct sbx_layout *l);
int sbx_x86_set_initial_state(struct sbx_vm *vm, uint64_t entry, uint64_t stack_top,
                              struct sbx_diag *diag);

/* state.c: read or write the whole vCPU state. Reading first completes a
 * pending I/O exit, so the state is consistent. */
int sbx_vcpu_finish_io(struct sbx_vm *vm, struct sbx_diag *diag);
int sbx_vcpu_save(struct sbx_vm *vm, struct sbx_vcpu_state *st, struct sbx_diag *diag);
int sbx_vcpu_load(struct sbx_vm *vm, const struct sbx_vcpu_state *st, struct sbx_diag *diag);

/* deadline.c: block signo in the calling thread (its old mask into *saved),
 * let KVM_RUN take it, and arm the timer for ms from now. */
int sbx_deadline_begin(struct sbx_deadline *dl, const struct sbx_vm *vm, uint32_t ms, int signo,
                       sigset_t *saved, struct sbx_diag *diag);
/* Disarm, take back a signal the timer sent, restore the thread's mask. */
void sbx_deadline_finish(struct sbx_deadline *dl, int signo, const sigset_t *saved);
bool sbx_deadline_passed(const struct sbx_deadline *dl);
void sbx_deadline_free(struct sbx_deadline *dl);
/* run.c: run the guest until it issues hypercall `until` (READY or RETURN). */
int sbx_run(struct sbx_sandbox *s, uint8_t until, struct sbx_diag *diag);
/* run.c: the registers of the code that faulted, when the vCPU stopped in an
 * exception stub (x86.c): rip, rflags and rsp from the CPU's frame on the
 * exception stack. Returns the vector, or -1 when it is not in a stub. */
int sbx_fault_regs(const struct sbx_vm *vm, struct kvm_regs *regs);

/* hypercall.c: handle hypercall op; 0 to resume the guest, 1 when op == until,
 * a negative error otherwise. */
int sbx_hypercall(struct sbx_sandbox *s, uint8_t op, uint8_t until, struct sbx_diag *diag);
int sbx_read_functions(struct sbx_sandbox *s, struct sbx_diag *diag);

/* value.c: the one place that maps API values and types to the wire's
 * (sbx_abi.h) and back. Nothing else may assume their codes are equal. */
uint32_t sbx_type_to_abi(enum sbx_type t);
/* false for a code that is no type (or VOID where allow_void is false). */
bool sbx_type_from_abi(uint32_t code, bool allow_void, enum sbx_type *out);
bool sbx_log_level_from_abi(uint64_t code, enum sbx_log_level *out);
/* A signature from wire codes (guest function table, snapshot files) into
 * f's types; false if a code is unknown or nargs is over SBX_MAX_ARGS. The
 * name is the caller's to fill and check. */
bool sbx_signature_from_abi(uint8_t ret, uint8_t nargs, const uint8_t *codes, struct sbx_func *f);
/* Encode v for the guest: call arguments and host-function results alike.
 * STR/BYTES go to xchg.data at s->xchg_data_used, which grows;
 * SBX_E_LIMIT if they do not fit (nothing written then). */
int sbx_value_encode(struct sbx_sandbox *s, const struct sbx_value *v, struct sbx_abi_value *out);
/* Check a guest-supplied value against type and decode it; STR/BYTES point
 * into guest memory. what names the value in error messages. */
int sbx_value_decode(struct sbx_sandbox *s, const struct sbx_abi_value *v, enum sbx_type type,
                     struct sbx_value *out, const char *what, struct sbx_diag *diag);

#endif
