/*
 * sbx_guest.h - the snapbox guest library: what a guest program uses.
 *
 * A guest defines sbx_guest_init(), which registers its functions with
 * sbx_register(); the library then tells the host it is ready and serves calls.
 * Built freestanding (no libc): the library supplies memcpy, memset, memcmp
 * and strlen, and embeds the version note the host checks.
 */
#ifndef SBX_GUEST_H
#define SBX_GUEST_H

#include <stddef.h>
#include <stdint.h>

#include "sbx_abi.h"

/* Short names for guest authors: the guest speaks only the ABI, so these are
 * the wire codes and limits of sbx_abi.h under the names host programs know
 * from snapbox.h. Never include this header together with snapbox.h. */
#define SBX_T_VOID SBX_ABI_T_VOID
#define SBX_T_I32 SBX_ABI_T_I32
#define SBX_T_I64 SBX_ABI_T_I64
#define SBX_T_U64 SBX_ABI_T_U64
#define SBX_T_F64 SBX_ABI_T_F64
#define SBX_T_BOOL SBX_ABI_T_BOOL
#define SBX_T_STR SBX_ABI_T_STR
#define SBX_T_BYTES SBX_ABI_T_BYTES
#define SBX_LOG_ERROR SBX_ABI_LOG_ERROR
#define SBX_LOG_WARN SBX_ABI_LOG_WARN
#define SBX_LOG_INFO SBX_ABI_LOG_INFO
#define SBX_LOG_DEBUG SBX_ABI_LOG_DEBUG
#define SBX_MAX_ARGS SBX_ABI_MAX_ARGS
#define SBX_MAX_NAME SBX_ABI_MAX_NAME
#define SBX_MAX_FUNCS SBX_ABI_MAX_FUNCS

/* A guest function: args holds nargs values of the registered types; write
 * the result into ret (its type is already set to the registered return type). */
typedef void (*sbx_guest_fn)(const struct sbx_abi_value *args, struct sbx_abi_value *ret);

/* Defined by the guest program: register functions here. */
void sbx_guest_init(void);

/* Register fn under name with return type ret and nargs argument types
 * (enum sbx_abi_type, passed as int). Aborts the guest on a bad registration. */
void sbx_register(const char *name, enum sbx_abi_type ret, sbx_guest_fn fn, unsigned nargs, ...);

/* Argument accessors. Strings and bytes stay valid until the call returns. */
static inline int64_t sbx_arg_i64(const struct sbx_abi_value *a, unsigned i) { return a[i].u.i64; }
static inline uint64_t sbx_arg_u64(const struct sbx_abi_value *a, unsigned i) { return a[i].u.u64; }
static inline double sbx_arg_f64(const struct sbx_abi_value *a, unsigned i) { return a[i].u.f64; }
static inline const void *sbx_arg_ptr(const struct sbx_abi_value *a, unsigned i)
{
    return (const void *)(uintptr_t)a[i].u.buf.gpa;
}
static inline size_t sbx_arg_len(const struct sbx_abi_value *a, unsigned i) { return (size_t)a[i].u.buf.len; }

/* Result setters. A string or bytes result must stay in guest memory until
 * the call returns (static or heap storage, not the function's stack). */
static inline void sbx_ret_i64(struct sbx_abi_value *r, int64_t v) { r->u.i64 = v; }
static inline void sbx_ret_u64(struct sbx_abi_value *r, uint64_t v) { r->u.u64 = v; }
static inline void sbx_ret_f64(struct sbx_abi_value *r, double v) { r->u.f64 = v; }
static inline void sbx_ret_buf(struct sbx_abi_value *r, const void *p, size_t len)
{
    r->u.buf.gpa = (uint64_t)(uintptr_t)p;
    r->u.buf.len = len;
}

/* Log a message through the host's log callback. */
void sbx_log(enum sbx_abi_log_level level, const char *msg);
/* Abort the current call (and poison the sandbox) with a code and message. */
_Noreturn void sbx_abort(int32_t code, const char *msg);

/* Call a host function by name. Returns 0 and fills *ret, or the host's
 * negative error code. String/bytes results stay valid until the call returns. */
int sbx_host_call(const char *name, struct sbx_abi_value *ret, unsigned nargs,
                  const struct sbx_abi_value *args);

/* Run fn before the first call after every restore or reset (at most 16
 * hooks), e.g. to reseed a random generator: sandboxes restored from one
 * snapshot start with the same memory. */
void sbx_on_restore(void (*fn)(void));

/* Initialise (sbx_guest_init), tell the host, serve calls; never returns. */
_Noreturn void sbx_guest_main(void);

/* Make hypercall op (the exchange area holds its request). */
void sbx_hypercall(uint8_t op);

/* Bump allocator over the heap (SBX_BOOT->heap_start to heap_end);
 * returns NULL when the heap is exhausted. Memory is never freed. */
void *sbx_alloc(size_t size);

/* Where the host put the guest's memory regions (heap, stack, exchange area). */
#define SBX_BOOT ((const volatile struct sbx_boot_info *)(uintptr_t)SBX_LAYOUT_BOOT)

/* The exchange area, for guests that speak the ABI directly. */
#define SBX_XCHG ((volatile struct sbx_xchg *)(uintptr_t)SBX_BOOT->xchg)

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

#endif
