/* json.c - the CLI's JSON output, built with jansson, which does all the
 * escaping. Whatever bytes a name, path, message or guest string holds, the
 * output is valid JSON: bytes that are not UTF-8 become U+FFFD, because
 * jansson (rightly) refuses to build a string from them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0: the rules
 * jansson checks (no overlong form, no surrogate, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || len > n)
        return 0;
    uint32_t cp = len == 1 ? c : c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    static const uint32_t min_cp[] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* A copy of s with every byte that starts no valid sequence replaced. */
static json_t *sanitized(const unsigned char *s, size_t len)
{
    static const char fffd[] = "\xef\xbf\xbd";
    if (len > (SIZE_MAX - 1) / 3)
        return NULL;
    char *buf = malloc(len * 3 + 1);
    if (!buf)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq(s + i, len - i);
        if (k) {
            memcpy(buf + o, s + i, k);
            o += k, i += k;
        } else {
            memcpy(buf + o, fffd, 3);
            o += 3, i++;
        }
    }
    json_t *j = json_stringn(buf, o);
    free(buf);
    return j;
}

json_t *cj_str(const void *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    return j ? j : sanitized(s, len);
}

json_t *cj_cstr(const char *s)
{
    return s ? cj_str(s, strlen(s)) : json_null();
}

/* JSON has no NaN or infinity: they become strings. */
static json_t *cj_f64(double d)
{
    if (isnan(d))
        return json_string("NaN");
    if (isinf(d))
        return json_string(d > 0 ? "Infinity" : "-Infinity");
    return json_real(d);
}

static json_t *cj_hex(const void *p, size_t len)
{
    char *hex = cli_hex(p, len);
    json_t *j = hex ? json_string(hex) : NULL;
    free(hex);
    return j;
}

/* jansson's integers are signed 64-bit: larger values stay exact as text. */
json_t *cj_u64(uint64_t u)
{
    if (u <= INT64_MAX)
        return json_integer((json_int_t)u);
    char dec[24];
    snprintf(dec, sizeof dec, "%llu", (unsigned long long)u);
    return json_string(dec);
}

json_t *cj_value(const struct sbx_value *v)
{
    switch (v->type) {
    case SBX_T_I32: return json_integer(v->u.i32);
    case SBX_T_I64: return json_integer(v->u.i64);
    case SBX_T_U64: return cj_u64(v->u.u64);
    case SBX_T_F64: return cj_f64(v->u.f64);
    case SBX_T_BOOL: return json_boolean(v->u.b);
    case SBX_T_STR: return cj_str(v->u.buf.ptr, v->u.buf.len);
    case SBX_T_BYTES: return cj_hex(v->u.buf.ptr, v->u.buf.len);
    default: return json_null();
    }
}

/* The library's error name, or its number from a newer library. */
static json_t *error_code(int code)
{
    const char *name = cli_error_name(code);
    return name ? json_string(name) : json_integer(code);
}

json_t *cj_error(const struct sbx_diag *diag)
{
    json_t *e = json_pack("{s:o, s:i, s:o}", "code", error_code(diag->code),
                          "exit", cli_exit_code(diag->code),
                          "message", cj_cstr(diag->msg[0] ? diag->msg : sbx_strerror(diag->code)));
    if (e && diag->code == SBX_E_GUEST_ABORT)
        json_object_set_new(e, "abort_code", json_integer(diag->abort_code));
    if (e && diag->code == SBX_E_GUEST_FAULT)
        json_object_set_new(e, "fault", json_pack("{s:I, s:o, s:o, s:o}",
                                                  "vector", (json_int_t)diag->fault.vector,
                                                  "rip", cj_u64(diag->fault.rip),
                                                  "addr", cj_u64(diag->fault.addr),
                                                  "error_code", cj_u64(diag->fault.error_code)));
    return json_pack("{s:o}", "error", e);
}

json_t *cj_usage_error(const char *msg)
{
    return json_pack("{s:{s:s, s:i, s:o}}", "error", "code", "usage", "exit", EXIT_USAGE,
                     "message", cj_cstr(msg));
}

int cj_add_verdict(json_t *o, enum sbx_version_policy policy, const struct sbx_diag *verdict)
{
    if (!o)
        return -1;
    return json_object_update_new(o, json_pack("{s:s, s:s, s:o*}", "policy",
                                               cli_policy_name(policy), "verdict",
                                               verdict->code ? "rejected" : "accepted", "reason",
                                               verdict->code ? cj_cstr(verdict->msg) : NULL));
}

int cj_emit(json_t *root, int ok_code)
{
    if (!root) {
        fputs("snapbox: out of memory while writing JSON\n", stderr);
        return EXIT_INTERNAL;
    }
    int rc = json_dumpf(root, stdout, JSON_ENCODE_ANY);
    json_decref(root);
    if (rc || putchar('\n') == EOF) {
        fputs("snapbox: cannot write JSON to stdout\n", stderr);
        return EXIT_IO;
    }
    return ok_code;
}
