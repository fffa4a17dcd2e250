/* cmd_run.c - `snapbox run`: load a guest, initialise it in KVM, call one function. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Host functions the CLI offers every guest (the demo guest calls them). */
static int host_add(void *ctx, const struct sbx_value *args, size_t nargs, struct sbx_value *ret)
{
    (void)ctx; (void)nargs;
    ret->u.i64 = (int64_t)((uint64_t)args[0].u.i64 + (uint64_t)args[1].u.i64);
    return 0;
}

static int host_greet(void *ctx, const struct sbx_value *args, size_t nargs, struct sbx_value *ret)
{
    static char buf[256];
    (void)ctx; (void)nargs;
    int n = snprintf(buf, sizeof buf, "hello, %.*s, from the host", (int)args[0].u.buf.len,
                     (const char *)args[0].u.buf.ptr);
    ret->u.buf.ptr = buf;
    ret->u.buf.len = n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
    return 0;
}


bool cli_parse_size(const char *text, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(text, &end, 0);
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k') shift = 10, end++;
    else if (*end == 'M' || *end == 'm') shift = 20, end++;
    else if (*end == 'G' || *end == 'g') shift = 30, end++;
    if (end == text || *end || strchr(text, '-') || v > (UINT64_MAX >> shift))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

struct sbx_host_fns *cli_host_functions(struct sbx_diag *diag)
{
    static const enum sbx_type add_args[] = { SBX_T_I64, SBX_T_I64 }, greet_args[] = { SBX_T_STR };
    struct sbx_host_fns *h = NULL;
    if (sbx_host_fns_new(&h, diag) ||
        sbx_host_fns_add(h, "host_add", SBX_T_I64, 2, add_args, host_add, NULL, diag) ||
        sbx_host_fns_add(h, "host_greet", SBX_T_STR, 1, greet_args, host_greet, NULL, diag)) {
        sbx_host_fns_free(h);
        return NULL;
    }
    return h;
}

struct run_args {
    const char *pos[2 + SBX_MAX_ARGS + 1];
    int npos;
    struct sbx_load_opts opts;
    struct sbx_config cfg;
};

static int parse_run_args(int argc, char **argv, struct run_args *ra)
{
    bool opts_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!opts_done && !strcmp(a, "--")) {
            opts_done = true;
        } else if (!opts_done && !strcmp(a, "--relaxed")) {
            ra->opts.policy = SBX_VERSION_RELAXED;
        } else if (!opts_done && !strcmp(a, "--require-note")) {
            ra->opts.require_note = true;
        } else if (!opts_done && !strcmp(a, "--mem") && i + 1 < argc) {
            if (!cli_parse_size(argv[++i], &ra->cfg.mem_size)) {
                fprintf(stderr, "snapbox run: bad --mem size '%s'\n", argv[i]);
                return EXIT_USAGE;
            }
        } else if (!opts_done && !strcmp(a, "--deadline") && i + 1 < argc) {
            uint64_t ms;
            if (!cli_parse_size(argv[++i], &ms) || ms == 0 || ms > UINT32_MAX) {
                fprintf(stderr, "snapbox run: bad --deadline '%s'\n", argv[i]);
                return EXIT_USAGE;
            }
            ra->cfg.deadline_ms = (uint32_t)ms;
        } else if (ra->npos < (int)(sizeof ra->pos / sizeof ra->pos[0])) {
            ra->pos[ra->npos++] = a;
        } else {
            fprintf(stderr, "snapbox run: too many arguments (a function takes at most %u)\n",
                    SBX_MAX_ARGS);
            return EXIT_USAGE;
        }
    }
    if (ra->npos < 2) {
        fprintf(stderr, "usage: snapbox run GUEST.elf FUNC [ARG...] [--mem SIZE] [--deadline MS]\n");
        return EXIT_USAGE;
    }
    return 0;
}

/* Parse the call's arguments by the function's signature, then call it. */
int cli_call(struct sbx_sandbox *s, const char *func, const char *const *texts, int ntexts)
{
    struct sbx_diag diag = { 0 };
    SBX_OPTS(sbx_func_info, fi);
    if (sbx_sandbox_find_function(s, func, &fi, NULL)) {
        fprintf(stderr, "snapbox: guest has no function '%s'; it offers:", func);
        for (size_t i = 0; i < sbx_sandbox_function_count(s); i++)
            if (sbx_sandbox_function(s, i, &fi, NULL) == 0)
                fprintf(stderr, " %s", fi.name);
        fputc('\n', stderr);
        return EXIT_BAD_CALL;
    }
    if ((size_t)ntexts != fi.nargs) {
        fprintf(stderr, "snapbox: %s takes %zu arguments, got %d\n", func, fi.nargs, ntexts);
        return EXIT_BAD_CALL;
    }
    struct sbx_value args[SBX_MAX_ARGS];
    void *owned[SBX_MAX_ARGS] = { 0 };
    int rc = 0;
    for (int i = 0; i < ntexts && rc == 0; i++)
        rc = cli_parse_value(texts[i], fi.args[i], &args[i], &owned[i], &diag);
    struct sbx_value ret;
    if (rc == 0)
        rc = sbx_sandbox_call(s, func, args, (size_t)ntexts, &ret, &diag);
    for (int i = 0; i < ntexts; i++)
        free(owned[i]);
    if (rc)
        return cli_report(&diag);
    cli_print_value(stdout, &ret);
    return EXIT_OK_;
}

int cmd_run(int argc, char **argv)
{
    struct run_args ra = { .opts = { .sz = sizeof ra.opts, .log = cli_log },
                           .cfg = { .sz = sizeof ra.cfg, .log = cli_log } };
    int rc = parse_run_args(argc, argv, &ra);
    if (rc)
        return rc;
    struct sbx_diag diag = { 0 };
    struct sbx_guest *g = NULL;
    struct sbx_sandbox *s = NULL;
    struct sbx_host_fns *fns = cli_host_functions(&diag);
    if (!fns || sbx_guest_load(ra.pos[0], &ra.opts, &g, &diag)) {
        rc = cli_report(&diag);
        goto out;
    }
    ra.cfg.host_fns = fns;
    if (sbx_sandbox_create(g, &ra.cfg, &s, &diag)) {
        rc = cli_report(&diag);
        goto out;
    }
    rc = cli_call(s, ra.pos[1], ra.pos + 2, ra.npos - 2);
out:
    sbx_sandbox_destroy(s);
    sbx_guest_free(g);
    sbx_host_fns_free(fns);
    return rc;
}
