/* value.c - the one encoder and decoder between API values (snapbox.h) and
 * wire values (sbx_abi.h): call arguments and host-function results going to
 * the guest, results and host-call arguments coming back, type codes and log
 * levels. The two headers are separate contracts; this file is the only one
 * that knows how their codes correspond. */
#include <string.h>

#include "vcpu.h"

/* The codes agree today; the mapping below does not rely on it, but a change
 * on one side should be a decision, not an accident. (int): the enums are
 * distinct types, and the compiler rightly warns when they meet. */
#define SAME(a, b) ((int)(a) == (int)(b))
_Static_assert(SAME(SBX_T_VOID, SBX_ABI_T_VOID) && SAME(SBX_T_I32, SBX_ABI_T_I32) &&
                   SAME(SBX_T_I64, SBX_ABI_T_I64) && SAME(SBX_T_U64, SBX_ABI_T_U64) &&
                   SAME(SBX_T_F64, SBX_ABI_T_F64) && SAME(SBX_T_BOOL, SBX_ABI_T_BOOL) &&
                   SAME(SBX_T_STR, SBX_ABI_T_STR) && SAME(SBX_T_BYTES, SBX_ABI_T_BYTES) &&
                   SAME(SBX_T_COUNT_, SBX_ABI_T_COUNT_),
               "API and wire type codes");
_Static_assert(SAME(SBX_LOG_ERROR, SBX_ABI_LOG_ERROR) && SAME(SBX_LOG_WARN, SBX_ABI_LOG_WARN) &&
                   SAME(SBX_LOG_INFO, SBX_ABI_LOG_INFO) && SAME(SBX_LOG_DEBUG, SBX_ABI_LOG_DEBUG),
               "API and wire log levels");
/* The API may promise less than the wire carries, never more. */
_Static_assert(SBX_MAX_ARGS <= SBX_ABI_MAX_ARGS && SBX_MAX_NAME <= SBX_ABI_MAX_NAME,
               "API signature limits fit the wire");

uint32_t sbx_type_to_abi(enum sbx_type t)
{
    switch (t) {
    case SBX_T_VOID: return SBX_ABI_T_VOID;
    case SBX_T_I32: return SBX_ABI_T_I32;
    case SBX_T_I64: return SBX_ABI_T_I64;
    case SBX_T_U64: return SBX_ABI_T_U64;
    case SBX_T_F64: return SBX_ABI_T_F64;
    case SBX_T_BOOL: return SBX_ABI_T_BOOL;
    case SBX_T_STR: return SBX_ABI_T_STR;
    case SBX_T_BYTES: return SBX_ABI_T_BYTES;
    }
    return SBX_ABI_T_COUNT_; /* no type: the guest rejects it */
}

bool sbx_type_from_abi(uint32_t code, bool allow_void, enum sbx_type *out)
{
    switch (code) {
    case SBX_ABI_T_VOID: *out = SBX_T_VOID; return allow_void;
    case SBX_ABI_T_I32: *out = SBX_T_I32; return true;
    case SBX_ABI_T_I64: *out = SBX_T_I64; return true;
    case SBX_ABI_T_U64: *out = SBX_T_U64; return true;
    case SBX_ABI_T_F64: *out = SBX_T_F64; return true;
    case SBX_ABI_T_BOOL: *out = SBX_T_BOOL; return true;
    case SBX_ABI_T_STR: *out = SBX_T_STR; return true;
    case SBX_ABI_T_BYTES: *out = SBX_T_BYTES; return true;
    default: return false;
    }
}

bool sbx_log_level_from_abi(uint64_t code, enum sbx_log_level *out)
{
    switch (code) {
    case SBX_ABI_LOG_ERROR: *out = SBX_LOG_ERROR; return true;
    case SBX_ABI_LOG_WARN: *out = SBX_LOG_WARN; return true;
    case SBX_ABI_LOG_INFO: *out = SBX_LOG_INFO; return true;
    case SBX_ABI_LOG_DEBUG: *out = SBX_LOG_DEBUG; return true;
    default: return false;
    }
}

bool sbx_signature_from_abi(uint8_t ret, uint8_t nargs, const uint8_t *codes, struct sbx_func *f)
{
    if (nargs > SBX_MAX_ARGS || !sbx_type_from_abi(ret, true, &f->ret_type))
        return false;
    f->nargs = nargs;
    for (size_t a = 0; a < nargs; a++)
        if (!sbx_type_from_abi(codes[a], false, &f->arg_types[a]))
            return false;
    return sbx_valid_signature(f->ret_type, f->nargs, f->arg_types);
}

/* Strings and bytes: appended to xchg.data. memmove: a host function may
 * answer with bytes of its argument, which can lie in the exchange area
 * itself (found by fuzz_hypercall). */
static int encode_buf(struct sbx_sandbox *s, const struct sbx_value *v, struct sbx_abi_value *out)
{
    if (v->u.buf.len > sbx_xchg_data_size(&s->vm) - s->xchg_data_used)
        return SBX_E_LIMIT;
    if (v->u.buf.len)
        memmove(sbx_xchg(&s->vm)->data + s->xchg_data_used, v->u.buf.ptr, v->u.buf.len);
    out->u.buf.gpa = sbx_xchg_data_gpa(&s->vm) + s->xchg_data_used;
    out->u.buf.len = v->u.buf.len;
    s->xchg_data_used += (uint32_t)v->u.buf.len;
    return 0;
}

int sbx_value_encode(struct sbx_sandbox *s, const struct sbx_value *v, struct sbx_abi_value *out)
{
    *out = (struct sbx_abi_value){ .type = sbx_type_to_abi(v->type) };
    switch (v->type) {
    case SBX_T_VOID: return 0;
    case SBX_T_I32: out->u.i64 = v->u.i32; return 0;
    case SBX_T_BOOL: out->u.i64 = v->u.b; return 0;
    case SBX_T_I64: out->u.i64 = v->u.i64; return 0;
    case SBX_T_U64: out->u.u64 = v->u.u64; return 0;
    case SBX_T_F64: out->u.f64 = v->u.f64; return 0;
    case SBX_T_STR:
    case SBX_T_BYTES: return encode_buf(s, v, out);
    }
    return SBX_E_ARGS; /* not a type: callers check types first */
}

static int decode_buf(struct sbx_sandbox *s, const struct sbx_abi_value *v, struct sbx_value *out,
                      const char *what, struct sbx_diag *diag)
{
    if (v->u.buf.len > SBX_MAX_RESULT ||
        !(out->u.buf.ptr = sbx_mem_at(&s->vm, v->u.buf.gpa, v->u.buf.len)))
        return sbx_fail(diag, SBX_E_GUEST_ABI,
                        "guest gave %s at 0x%llx, length %llu, outside its memory or over "
                        "the %u-byte limit",
                        what, (unsigned long long)v->u.buf.gpa,
                        (unsigned long long)v->u.buf.len, SBX_MAX_RESULT);
    out->u.buf.len = (size_t)v->u.buf.len;
    return 0;
}

int sbx_value_decode(struct sbx_sandbox *s, const struct sbx_abi_value *v, enum sbx_type type,
                     struct sbx_value *out, const char *what, struct sbx_diag *diag)
{
    enum sbx_type got;
    if (!sbx_type_from_abi(v->type, true, &got) || got != type)
        return sbx_fail(diag, SBX_E_GUEST_ABI, "guest gave %s of type %s, expected %s", what,
                        sbx_type_from_abi(v->type, true, &got) ? sbx_type_name(got) : "?",
                        sbx_type_name(type));
    out->type = type;
    switch (type) {
    case SBX_T_VOID: return 0;
    case SBX_T_I32:
        if (v->u.i64 < INT32_MIN || v->u.i64 > INT32_MAX)
            return sbx_fail(diag, SBX_E_GUEST_ABI, "guest gave %s i32 out of range: %lld", what,
                            (long long)v->u.i64);
        out->u.i32 = (int32_t)v->u.i64;
        return 0;
    case SBX_T_BOOL:
        if (v->u.u64 > 1)
            return sbx_fail(diag, SBX_E_GUEST_ABI, "guest gave %s bool that is %llu, not 0 or 1",
                            what, (unsigned long long)v->u.u64);
        out->u.b = v->u.u64 == 1;
        return 0;
    case SBX_T_I64: out->u.i64 = v->u.i64; return 0;
    case SBX_T_U64: out->u.u64 = v->u.u64; return 0;
    case SBX_T_F64: out->u.f64 = v->u.f64; return 0;
    case SBX_T_STR:
    case SBX_T_BYTES: return decode_buf(s, v, out, what, diag);
    }
    return sbx_fail(diag, SBX_E_GUEST_ABI, "%s has no valid type", what);
}
