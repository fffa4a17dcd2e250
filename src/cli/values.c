/* values.c - typed values from and to command-line text. */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Arguments read from a file or stdin: far above any guest's memory limit for
 * arguments, far below what would hurt the host. */
#define ARG_FILE_MAX (16u << 20)

static int bad(struct sbx_diag *diag, const char *text, enum sbx_type t)
{
    snprintf(diag->msg, sizeof diag->msg, "'%s' is not a valid %s", text, sbx_type_name(t));
    diag->code = SBX_E_ARGS;
    return SBX_E_ARGS;
}

static int fail(struct sbx_diag *diag, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct sbx_diag *diag, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(diag->msg, sizeof diag->msg, fmt, ap);
    va_end(ap);
    diag->code = code;
    return code;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int cli_parse_hex(const char *text, struct sbx_value *out, void **owned, struct sbx_diag *diag)
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

/* The one bounded read of an argument's bytes: a file, or stdin for "-". */
static int read_input(const char *path, struct sbx_value *out, void **owned,
                      struct sbx_diag *diag)
{
    bool is_stdin = !strcmp(path, "-");
    const char *name = is_stdin ? "stdin" : path;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    size_t cap = ARG_FILE_MAX + 1, n = 0;
    uint8_t *buf = f ? malloc(cap) : NULL;
    int rc = SBX_OK;
    if (!f || !buf) {
        rc = fail(diag, f ? SBX_E_NOMEM : SBX_E_IO, "%s: %s", name, strerror(errno));
        goto out;
    }
    /* one byte more than allowed tells an oversized input from a full one */
    n = fread(buf, 1, cap, f);
    if (ferror(f))
        rc = fail(diag, SBX_E_IO, "%s: cannot read: %s", name, strerror(errno));
    else if (n > ARG_FILE_MAX)
        rc = fail(diag, SBX_E_LIMIT, "%s: an argument read from a file or stdin is limited to "
                  "%u MiB", name, ARG_FILE_MAX >> 20);
out:
    if (f && !is_stdin)
        fclose(f);
    if (rc) {
        free(buf);
        return rc;
    }
    out->u.buf.ptr = buf;
    out->u.buf.len = n;
    *owned = buf;
    return 0;
}

/* str and bytes: "@FILE" and "@-" are a file's or stdin's bytes as they are;
 * "@@x" is the text "@x"; otherwise str is the text, bytes its hex. */
static int parse_buf(const char *text, struct sbx_value *out, void **owned,
                     struct sbx_diag *diag)
{
    if (text[0] == '@' && text[1] != '@')
        return read_input(text + 1, out, owned, diag);
    if (text[0] == '@')
        text++;
    if (out->type == SBX_T_BYTES)
        return cli_parse_hex(text, out, owned, diag);
    out->u.buf.ptr = text;
    out->u.buf.len = strlen(text);
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
    case SBX_T_BYTES:
        return parse_buf(text, out, owned, diag);
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
    case SBX_T_BYTES: {
        char *hex = cli_hex(v->u.buf.ptr, v->u.buf.len);
        fprintf(f, "%s\n", hex ? hex : "(out of memory)");
        free(hex);
        return;
    }
    default: return;
    }
}

char *cli_hex(const void *p, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    char *hex = len < SIZE_MAX / 2 ? malloc(2 * len + 1) : NULL;
    if (!hex)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        hex[2 * i] = digits[((const uint8_t *)p)[i] >> 4];
        hex[2 * i + 1] = digits[((const uint8_t *)p)[i] & 15];
    }
    hex[2 * len] = '\0';
    return hex;
}
