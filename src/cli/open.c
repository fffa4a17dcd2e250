/* open.c - where the command line becomes the library's options structs:
 * the only place that fills sbx_load_opts, sbx_snapshot_open_opts and
 * sbx_config and offers the CLI's host functions, so a change in the shape
 * of those (a size field, host functions registered by a call) is made here. */
#include "cli.h"
#include "snapbox_oci.h"

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

static struct sbx_host_fns *host_functions(struct sbx_diag *diag)
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

struct sbx_host_fns *cli_config(const struct cli *c, struct sbx_config *cfg,
                                struct sbx_diag *diag)
{
    struct sbx_host_fns *fns = host_functions(diag);
    *cfg = (struct sbx_config){
        .sz = sizeof *cfg,
        .mem_size = c->mem_size,
        .stack_size = c->stack_size,
        .xchg_size = c->xchg_size,
        .deadline_ms = c->deadline_ms,
        .log = cli_log,
        .host_fns = fns,
        .core_dump_dir = c->core_dir,
        .core_dump_max_bytes = c->core_max,
        .core_dump_max_files = c->core_files,
        .gdb_addr = c->gdb,
    };
    return fns;
}

static struct sbx_load_opts load_opts(const struct cli *c)
{
    return (struct sbx_load_opts){ .sz = sizeof(struct sbx_load_opts), .policy = c->policy,
                                   .require_note = c->require_note, .log = cli_log };
}

int cli_load_guest(const struct cli *c, const char *path, struct sbx_guest **out,
                   struct sbx_diag *diag)
{
    struct sbx_load_opts opts = load_opts(c);
    return sbx_guest_load(path, &opts, out, diag);
}

int cli_guest_verdict(const struct cli *c, const struct sbx_guest *g, struct sbx_diag *verdict)
{
    struct sbx_load_opts opts = load_opts(c);
    return sbx_guest_check_version(g, &opts, verdict);
}

/* Describing reads a file of any version: the most lenient policy for the
 * open (whatever the library still checks there), the user's for the verdict. */
int cli_describe_snapshot(const struct cli *c, const char *path, bool full,
                          struct sbx_snapshot **out, struct sbx_diag *verdict,
                          struct sbx_diag *diag)
{
    SBX_OPTS(sbx_snapshot_open_opts, opts, .policy = SBX_VERSION_ABI);
    /* oci://: fetched as leniently as a file is opened; the verdict is below */
    struct cli lenient = *c;
    lenient.policy = SBX_VERSION_ABI, lenient.require_note = false, lenient.no_cpu_check = true;
    char src[SBX_OCI_PATH_MAX];
    int rc = cli_snapshot_source(&lenient, path, src, sizeof src, diag);
    if (rc)
        return rc;
    rc = full ? sbx_snapshot_open(src, &opts, out, diag)
              : sbx_snapshot_open_header(src, &opts, out, diag);
    if (rc == 0)
        sbx_snapshot_check_compat(*out, c->policy, c->require_note, verdict);
    return rc;
}

int cli_open_snapshot(const struct cli *c, const char *path, struct sbx_snapshot **out,
                      struct sbx_diag *diag)
{
    SBX_OPTS(sbx_snapshot_open_opts, opts, .policy = c->policy);
    char src[SBX_OCI_PATH_MAX];
    int rc = cli_snapshot_source(c, path, src, sizeof src, diag);
    if (rc)
        return rc;
    rc = sbx_snapshot_open(src, &opts, out, diag);
    if (rc == 0)
        rc = sbx_snapshot_check_compat(*out, c->policy, c->require_note, diag);
    if (rc) {
        sbx_snapshot_free(*out);
        *out = NULL;
    }
    return rc;
}
