/* args.c - a request's JSON array as a guest function's typed arguments.
 *
 * JSON numbers and booleans are taken as they are; a JSON string for a
 * number or a bool is read by the CLI's own rules (cli_parse_value: "0x10",
 * a u64 above 2^63-1 as the CLI prints it, "NaN"); str is the string's
 * bytes; bytes is a string of hex, as results print them (cli_parse_hex).
 * Never "@FILE": a request must not read the server's files. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"

static int arg_error(struct sbx_diag *diag, size_t i, const struct sbx_func_info *fi,
                     const char *why)
{
    snprintf(diag->msg, sizeof diag->msg, "%s: argument %zu (%s): %s", fi->name, i,
             sbx_type_name(fi->args[i]), why);
    diag->code = SBX_E_ARGS;
    return SBX_E_ARGS;
}

/* A JSON integer as i32, i64 or u64, range checked. */
static int from_integer(json_int_t n, struct sbx_value *v, size_t i, const struct sbx_func_info *fi,
                        struct sbx_diag *diag)
{
    switch (v->type) {
    case SBX_T_I32:
        if (n < INT32_MIN || n > INT32_MAX)
            return arg_error(diag, i, fi, "out of range for i32");
        v->u.i32 = (int32_t)n;
        return 0;
    case SBX_T_I64: v->u.i64 = n; return 0;
    case SBX_T_U64:
        if (n < 0)
            return arg_error(diag, i, fi, "negative for u64");
        v->u.u64 = (uint64_t)n;
        return 0;
    case SBX_T_F64: v->u.f64 = (double)n; return 0;
    default: return arg_error(diag, i, fi, "a number where a bool is expected");
    }
}

static int from_string(const json_t *j, struct sbx_value *v, void **owned, size_t i,
                       const struct sbx_func_info *fi, struct sbx_diag *diag)
{
    const char *text = json_string_value(j);
    size_t len = json_string_length(j);
    if (v->type == SBX_T_STR) {
        v->u.buf.ptr = text;
        v->u.buf.len = len;
        return 0;
    }
    if (strlen(text) != len)
        return arg_error(diag, i, fi, "a string holding NUL");
    /* for bytes the hex rule, for numbers and bool the CLI's text rules */
    int rc = v->type == SBX_T_BYTES ? cli_parse_hex(text, v, owned, diag)
                                    : cli_parse_value(text, v->type, v, owned, diag);
    const char *why = v->type == SBX_T_BYTES ? "not hex (pairs of 0-9 a-f)" : "not a valid value";
    return rc ? arg_error(diag, i, fi, why) : 0;
}

static int one_arg(const json_t *j, struct sbx_value *v, void **owned, size_t i,
                   const struct sbx_func_info *fi, struct sbx_diag *diag)
{
    v->type = fi->args[i];
    if (json_is_string(j))
        return from_string(j, v, owned, i, fi, diag);
    if (v->type == SBX_T_STR || v->type == SBX_T_BYTES)
        return arg_error(diag, i, fi, "expected a JSON string");
    if (json_is_integer(j))
        return from_integer(json_integer_value(j), v, i, fi, diag);
    if (json_is_real(j) && v->type == SBX_T_F64) {
        v->u.f64 = json_real_value(j);
        return 0;
    }
    if (json_is_real(j))
        return arg_error(diag, i, fi, "a fractional number where an integer is expected");
    if (json_is_boolean(j) && v->type == SBX_T_BOOL) {
        v->u.b = json_is_true(j);
        return 0;
    }
    return arg_error(diag, i, fi, "wrong JSON type");
}

/* str arguments point into *doc, which the caller keeps until the call is
 * done (json_decref), as it frees owned (serve_args_free). */
int serve_args(const char *body, size_t len, const struct sbx_func_info *fi,
               struct sbx_value *v, void **owned, json_t **doc, struct sbx_diag *diag)
{
    json_error_t err;
    /* an empty body is the empty array: a function without arguments */
    *doc = len ? json_loadb(body, len, JSON_ALLOW_NUL, &err) : json_array();
    if (!*doc) {
        snprintf(diag->msg, sizeof diag->msg, "the body is not JSON: %s (line %d, column %d)",
                 err.text, err.line, err.column);
        return diag->code = SBX_E_INVAL;
    }
    if (!json_is_array(*doc)) {
        snprintf(diag->msg, sizeof diag->msg, "the body must be a JSON array of %s's arguments",
                 fi->name);
        return diag->code = SBX_E_INVAL;
    }
    size_t n = json_array_size(*doc);
    if (n != fi->nargs) {
        snprintf(diag->msg, sizeof diag->msg, "%s takes %zu arguments, got %zu", fi->name,
                 fi->nargs, n);
        return diag->code = SBX_E_ARGS;
    }
    for (size_t i = 0; i < n; i++)
        if (one_arg(json_array_get(*doc, i), &v[i], &owned[i], i, fi, diag))
            return diag->code;
    return 0;
}

void serve_args_free(void **owned)
{
    for (size_t i = 0; i < SBX_MAX_ARGS; i++) {
        free(owned[i]);
        owned[i] = NULL;
    }
}
