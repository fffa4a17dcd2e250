/* cmd_call.c - `snapbox call`: restore a snapshot and call one guest function,
 * once or as N requests; and the calling helpers `run` shares. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

double cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* "guest has no function 'f'; it offers: a b c", as much as fits. */
static int no_function(struct sbx_sandbox *s, const char *func, struct sbx_diag *diag)
{
    SBX_OPTS(sbx_func_info, fi);
    size_t n = (size_t)snprintf(diag->msg, sizeof diag->msg,
                                "guest has no function '%s'; it offers:", func);
    for (size_t i = 0; i < sbx_sandbox_function_count(s) && n < sizeof diag->msg; i++)
        if (sbx_sandbox_function(s, i, &fi, NULL) == 0)
            n += (size_t)snprintf(diag->msg + n, sizeof diag->msg - n, " %s", fi.name);
    diag->code = SBX_E_NO_FUNC;
    return SBX_E_NO_FUNC;
}

int cli_args_parse(struct sbx_sandbox *s, const char *func, char *const *texts, int ntexts,
                   struct cli_args *a, struct sbx_diag *diag)
{
    *a = (struct cli_args){ .func = func, .fi = { .sz = sizeof a->fi } };
    if (sbx_sandbox_find_function(s, func, &a->fi, NULL))
        return no_function(s, func, diag);
    if ((size_t)ntexts != a->fi.nargs) {
        snprintf(diag->msg, sizeof diag->msg, "%s takes %zu arguments, got %d", func,
                 a->fi.nargs, ntexts);
        diag->code = SBX_E_ARGS;
        return SBX_E_ARGS;
    }
    for (int i = 0; i < ntexts; i++)
        if (cli_parse_value(texts[i], a->fi.args[i], &a->v[i], &a->owned[i], diag))
            return diag->code;
    return 0;
}

void cli_args_free(struct cli_args *a)
{
    for (size_t i = 0; i < SBX_MAX_ARGS; i++)
        free(a->owned[i]);
}

/* {"function": ..., "type": ..., KEY: RESULTS, "timing_ms": TIMING} */
static int emit_result(const struct cli_args *a, const char *key, json_t *results, json_t *timing)
{
    json_t *o = json_pack("{s:o, s:s, s:o, s:o*}", "function", cj_cstr(a->func),
                          "type", sbx_type_name(a->fi.ret), key, results, "timing_ms", timing);
    return cj_emit(o, EXIT_OK_);
}

int cli_call_once(const struct cli *c, struct sbx_sandbox *s, char *const *pos, int npos,
                  double restore_ms)
{
    struct sbx_diag diag = { 0 };
    struct cli_args a;
    struct sbx_value ret;
    int rc;
    double t0 = cli_now_ms();
    if (cli_args_parse(s, pos[1], pos + 2, npos - 2, &a, &diag) ||
        sbx_sandbox_call(s, a.func, a.v, a.fi.nargs, &ret, &diag)) {
        rc = cli_report(c, &diag);
        goto out;
    }
    double call_ms = cli_now_ms() - t0;
    if (c->json) {
        json_t *timing = c->timing ? json_pack("{s:f, s:f}", "restore", restore_ms, "call", call_ms)
                                   : NULL;
        rc = emit_result(&a, "result", cj_value(&ret), timing);
        goto out;
    }
    cli_print_value(stdout, &ret);
    if (c->timing)
        fprintf(stderr, "snapbox: restore from file took %.2f ms, the call %.2f ms\n",
                restore_ms, call_ms);
    rc = EXIT_OK_;
out:
    cli_args_free(&a);
    return rc;
}

struct timing {
    double open_ms, restore_ms, call_ms, reset_ms;
};

/* Call and reset n times; each result printed, or gathered into results. */
static int request_loop(const struct cli *c, struct sbx_sandbox *s, const struct cli_args *a,
                        json_t *results, struct timing *tm, struct sbx_diag *diag)
{
    for (long r = 0; r < c->requests; r++) {
        struct sbx_value ret;
        double c0 = cli_now_ms();
        if (sbx_sandbox_call(s, a->func, a->v, a->fi.nargs, &ret, diag))
            return diag->code;
        double c1 = cli_now_ms();
        if (results && json_array_append_new(results, cj_value(&ret)))
            return diag->code = SBX_E_NOMEM;
        if (!results)
            cli_print_value(stdout, &ret);
        if (sbx_sandbox_reset(s, diag))
            return diag->code;
        tm->call_ms += c1 - c0, tm->reset_ms += cli_now_ms() - c1;
    }
    return 0;
}

static int report_requests(const struct cli *c, const struct cli_args *a, json_t *results,
                           const struct timing *tm)
{
    double n = (double)c->requests;
    if (c->json) {
        json_t *timing = c->timing ? json_pack("{s:f, s:f, s:f, s:f}", "template_open",
                                               tm->open_ms, "restore", tm->restore_ms,
                                               "call_mean", tm->call_ms / n,
                                               "reset_mean", tm->reset_ms / n) : NULL;
        return emit_result(a, "results", json_incref(results), timing);
    }
    if (c->timing)
        fprintf(stderr, "snapbox: template open %.2f ms, restore from pooled VM %.3f ms, then per "
                "request: call %.3f ms, reset %.3f ms (means of %ld)\n", tm->open_ms,
                tm->restore_ms, tm->call_ms / n, tm->reset_ms / n, c->requests);
    return EXIT_OK_;
}

/* One call per request on a sandbox from a template, reset after each:
 * the request-time path. Every request starts from the snapshot's state. */
static int serve_requests(const struct cli *c)
{
    struct sbx_diag diag = { 0 };
    struct sbx_snapshot *snap = NULL;
    struct sbx_template *t = NULL;
    struct sbx_pool *pool = NULL;
    struct sbx_sandbox *s = NULL;
    struct sbx_config cfg;
    struct cli_args a = { 0 };
    struct timing tm = { 0 };
    json_t *results = c->json ? json_array() : NULL;
    int rc;
    struct sbx_host_fns *fns = cli_config(c, &cfg, &diag);
    double t0 = cli_now_ms();
    if (!fns || cli_open_snapshot(c, c->pos[0], &snap, &diag) ||
        sbx_template_from_snapshot(snap, &t, &diag))
        goto fail;
    tm.open_ms = cli_now_ms() - t0;
    /* the pool is made before the request, as a server would */
    if (sbx_pool_create(sbx_template_mem_size(t), 1, &pool, &diag))
        goto fail;
    double t1 = cli_now_ms();
    if (sbx_sandbox_from_template(t, &cfg, pool, &s, &diag))
        goto fail;
    tm.restore_ms = cli_now_ms() - t1;
    if (cli_args_parse(s, c->pos[1], c->pos + 2, c->npos - 2, &a, &diag))
        goto fail;
    /* Everything is open and ready: from here on this process only serves,
     * so a guest that escaped into it could do little else. */
    if (!c->no_seccomp && sbx_seccomp_confine(0, &diag))
        goto fail;
    if (request_loop(c, s, &a, results, &tm, &diag))
        goto fail;
    rc = report_requests(c, &a, results, &tm);
    goto out;
fail:
    rc = cli_report(c, &diag);
out:
    json_decref(results);
    cli_args_free(&a);
    sbx_sandbox_destroy(s);
    sbx_pool_free(pool);
    sbx_template_free(t);
    sbx_snapshot_free(snap);
    sbx_host_fns_free(fns);
    return rc;
}

static int call(struct cli *c)
{
    if (c->requests && c->gdb)
        return cli_usage(c, "--gdb debugs one call; it does not go with --requests");
    /* writing a core file names and renames files, which the filter forbids */
    if (c->requests && c->core_dir && !c->no_seccomp)
        return cli_usage(c, "--core-dir with --requests needs --no-seccomp: the seccomp filter "
                         "does not allow writing core files");
    if (c->requests)
        return serve_requests(c);
    struct sbx_diag diag = { 0 };
    struct sbx_snapshot *snap = NULL;
    struct sbx_sandbox *s = NULL;
    struct sbx_config cfg;
    int rc;
    struct sbx_host_fns *fns = cli_config(c, &cfg, &diag);
    double t0 = cli_now_ms();
    if (!fns || cli_open_snapshot(c, c->pos[0], &snap, &diag) ||
        sbx_sandbox_restore(snap, &cfg, &s, &diag)) {
        rc = cli_report(c, &diag);
        goto out;
    }
    rc = cli_call_once(c, s, c->pos, c->npos, cli_now_ms() - t0);
out:
    sbx_sandbox_destroy(s);
    sbx_snapshot_free(snap);
    sbx_host_fns_free(fns);
    return rc;
}

static int set_time(struct cli *c, const char *val)
{
    (void)val;
    c->timing = true;
    return 0;
}

int cli_set_no_seccomp(struct cli *c, const char *val)
{
    (void)val;
    c->no_seccomp = true;
    return 0;
}

static int set_requests(struct cli *c, const char *val)
{
    char *end;
    c->requests = strtol(val, &end, 10);
    if (end == val || *end || c->requests < 1 || c->requests > 1000000)
        return cli_usage(c, "--requests wants 1..1000000, not '%s'", val);
    return 0;
}

const struct cli_cmd cli_cmd_call = {
    .name = "call",
    .synopsis = "FILE.snap|oci://REF FUNC [ARG...]",
    .summary = "restore the snapshot in KVM and call FUNC (arguments by its stored signature)",
    .details = "The snapshot must be accepted under the version policy (else exit 5).\n"
               "Arguments: i32 i64 u64 f64 as numbers, bool as true/false, str as is, bytes in\n"
               "hex; a str or bytes argument @FILE is the file's bytes, @- is stdin (16 MiB at\n"
               "most), @@x is the text @x. An argument that begins with '-' goes after `--`:\n"
               "  snapbox call f.snap neg -- -5\n"
               "The result is printed the same way (bytes in hex); under --json as\n"
               "{\"function\", \"type\", \"result\"} (\"results\" with --requests;\n"
               "u64 above 2^63-1 and non-finite f64 as strings).\n",
    .min_pos = 2, .max_pos = 2 + SBX_MAX_ARGS,
    .opts = {
        { "time", KEY_TIME, NULL, "report restore and call times (stderr; in the JSON)", set_time },
        { "requests", KEY_REQUESTS, "N", "serve N requests on a sandbox from a template, "
          "reset after each", set_requests },
        { "deadline", KEY_DEADLINE, "MS", "deadline per call (default 1000)", cli_set_deadline },
        { "no-seccomp", KEY_NO_SECCOMP, NULL, "with --requests: do not confine the serving "
          "process with the seccomp filter (docs/security.md)", cli_set_no_seccomp },
        CLI_OPTS_COMMON,
        CLI_OPTS_OCI,
        CLI_OPTS_CORE,
        CLI_OPT_GDB,
    },
    .run = call,
};
