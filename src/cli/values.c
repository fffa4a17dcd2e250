/* values.c - typed values from and to command-line text. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int bad(struct sbx_diag *diag, const char *text, enum sbx_type t)
{
    snprintf(diag->msg, sizeof diag->msg, "'%s' is not a valid %s", text, sbx_type_name(t));
    diag->code = SBX_E_ARGS;
    return SBX_E_ARGS;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int parse_hex(const char *text, struct sbx_value *out, void **owned, struct sbx_diag *diag)
{
    size_t n = strlen(text);
    if (n % 2)
        return bad(diag, text, SBX_T_BYTES);
    uint8_t *p = malloc(n / 2 + 1);
    if (!p)
        return bad(diag, text, SBX_T_BYTES);
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_digit(text[2 * i]), lo = hex_digit(text[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(p);
            return bad(diag, text, SBX_T_BYTES);
        }
        p[i] = (uint8_t)(hi << 4 | lo);
    }
    out->u.buf.ptr = p;
    out->u.buf.len = n / 2;
    *owned = p;
    return 0;
}

int cli_parse_value(const char *text, enum sbx_type t, struct sbx_value *out, void **owned,
                    struct sbx_diag *diag)
{
    char *end = NULL;
    *owned = NULL;
    out->type = t;
    errno = 0;
    switch (t) {
    case SBX_T_I32:
    case SBX_T_I64: {
        long long v = strtoll(text, &end, 0);
        if (errno || !*text || *end || (t == SBX_T_I32 && (v < INT32_MIN || v > INT32_MAX)))
            return bad(diag, text, t);
        if (t == SBX_T_I32)
            out->u.i32 = (int32_t)v;
        else
            out->u.i64 = v;
        return 0;
    }
    case SBX_T_U64:
        out->u.u64 = strtoull(text, &end, 0);
        if (errno || !*text || *end || strchr(text, '-'))
            return bad(diag, text, t);
        return 0;
    case SBX_T_F64:
        out->u.f64 = strtod(text, &end);
        if (errno || !*text || *end)
            return bad(diag, text, t);
        return 0;
    case SBX_T_BOOL:
        if (!strcmp(text, "true") || !strcmp(text, "1"))
            out->u.b = true;
        else if (!strcmp(text, "false") || !strcmp(text, "0"))
            out->u.b = false;
        else
            return bad(diag, text, t);
        return 0;
    case SBX_T_STR:
        out->u.buf.ptr = text;
        out->u.buf.len = strlen(text);
        return 0;
    case SBX_T_BYTES:
        return parse_hex(text, out, owned, diag);
    default:
        return bad(diag, text, t);
    }
}

void cli_print_value(FILE *f, const struct sbx_value *v)
{
    switch (v->type) {
    case SBX_T_VOID: return;
    case SBX_T_I32: fprintf(f, "%" PRId32 "\n", v->u.i32); return;
    case SBX_T_I64: fprintf(f, "%" PRId64 "\n", v->u.i64); return;
    case SBX_T_U64: fprintf(f, "%" PRIu64 "\n", v->u.u64); return;
    case SBX_T_F64: fprintf(f, "%.17g\n", v->u.f64); return;
    case SBX_T_BOOL: fprintf(f, "%s\n", v->u.b ? "true" : "false"); return;
    case SBX_T_STR:
        fwrite(v->u.buf.ptr, 1, v->u.buf.len, f);
        fputc('\n', f);
        return;
    case SBX_T_BYTES:
        for (size_t i = 0; i < v->u.buf.len; i++)
            fprintf(f, "%02x", ((const uint8_t *)v->u.buf.ptr)[i]);
        fputc('\n', f);
        return;
    default: return;
    }
}
