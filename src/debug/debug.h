/* debug.h - debugging guests: ELF core files (core.c) and the gdb remote
 * stub (gdbstub.c); the KVM primitives they use are in src/vcpu/debug.c. */
#ifndef SBX_DEBUG_H
#define SBX_DEBUG_H

#include <sys/user.h>

#include "vcpu/vcpu.h"

/* What a core file holds; plain data, so a snapshot file needs no KVM. */
struct sbx_core_input {
    const uint8_t *mem;
    uint64_t mem_size;
    const uint64_t *touched; /* optional: a bit per page that may be non-zero */
    struct kvm_regs regs;    /* of the code that was running (fault: that faulted) */
    struct kvm_sregs sregs;
    bool has_fp;
    struct user_fpregs_struct fp; /* the FXSAVE image: XSAVE's first 512 bytes */
    int signo;               /* pr_cursig: the signal a Linux process would have got */
    const char *name;        /* the guest, for NT_PRPSINFO */
    uint64_t max_bytes;      /* the file's size at most */
};

/* Write in's core file at path atomically; *truncated when memory was left
 * out to keep within max_bytes. SBX_E_LIMIT if not even the headers fit. */
int sbx_core_write(const struct sbx_core_input *in, const char *path, bool *truncated,
                   struct sbx_diag *diag);

/* After a call or the initialisation failed with rc: with core_dump_dir
 * set and rc a guest fault, abort or timeout, write the core file and add
 * its name (or why none was written) to diag's message. */
void sbx_core_after_failure(struct sbx_sandbox *s, int rc, struct sbx_diag *diag);

/* The signal a Linux process would have got for a failure rc (a fault of
 * exception vector, -1 if unknown): NT_PRSTATUS's and gdb's stop reason. */
int sbx_core_signal(int rc, int vector);

/* gdbstub.c: a debugging session on a sandbox (sbx_config.gdb_addr). */
/* SBX_E_INVAL unless addr is "HOST:PORT" with a loopback HOST. */
int sbx_gdb_check_addr(const char *addr, struct sbx_diag *diag);
/* sbx_run calls these: at the start of a run (the first one waits for gdb
 * and stops before the guest runs), on KVM_EXIT_DEBUG (0: resume), and at
 * the end with the run's result (breakpoints are lifted out of memory, so
 * that the host, snapshots and reset never see them). */
int sbx_gdb_run_begin(struct sbx_sandbox *s, struct sbx_diag *diag);
int sbx_gdb_debug_exit(struct sbx_sandbox *s, struct sbx_diag *diag);
void sbx_gdb_run_end(struct sbx_sandbox *s, int rc, const struct sbx_diag *diag);
/* A guest exception reported through its IDT (run.c): 0 to resume after a
 * breakpoint of ours, SBX_GDB_NOT_OURS for the usual fault report. */
#define SBX_GDB_NOT_OURS 1
int sbx_gdb_guest_trap(struct sbx_sandbox *s, uint32_t vector, struct sbx_diag *diag);
/* With cfg.gdb_addr: start listening there (the session begins at the first run). */
int sbx_gdb_attach(struct sbx_sandbox *s, struct sbx_diag *diag);
/* Tell gdb the guest is gone, close the session. */
void sbx_gdb_free(struct sbx_sandbox *s);

/* src/vcpu/debug.c: KVM's guest debugging for the stub. */
#define SBX_HW_BREAKPOINTS 4u
struct sbx_hw_bp {
    bool used;
    uint64_t addr;
    unsigned type; /* 0 execute, 1 write, 3 read/write (DR7 R/W bits) */
    unsigned len;  /* 1, 2, 4 or 8 */
};
/* KVM_SET_GUEST_DEBUG: software breakpoints exit, hw[] in the debug
 * registers, single step if step; enable false turns all of it off. */
int sbx_vcpu_guest_debug(struct sbx_vm *vm, bool enable, bool step, const struct sbx_hw_bp *hw,
                         struct sbx_diag *diag);

#endif
