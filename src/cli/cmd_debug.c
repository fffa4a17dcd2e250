/* cmd_debug.c - debugging guests from the command line: the core dump and
 * gdb options of run, call and create, and `snapbox coredump`. */
#include <stdlib.h>

#include "cli.h"

int cli_set_core_dir(struct cli *c, const char *val)
{
    c->core_dir = val;
    return 0;
}

int cli_set_core_max(struct cli *c, const char *val)
{
    if (!cli_parse_size(val, &c->core_max) || c->core_max == 0)
        return cli_usage(c, "bad --core-max size '%s'", val);
    return 0;
}

int cli_set_core_files(struct cli *c, const char *val)
{
    uint64_t n;
    if (!cli_parse_size(val, &n) || n == 0 || n > UINT32_MAX)
        return cli_usage(c, "bad --core-files '%s' (1 or more)", val);
    c->core_files = (uint32_t)n;
    return 0;
}

/* The library checks the address (loopback only) and says what is wrong. */
int cli_set_gdb(struct cli *c, const char *val)
{
    c->gdb = val;
    return 0;
}

static int coredump(struct cli *c)
{
    struct sbx_diag diag = { 0 }, verdict = { 0 };
    struct sbx_snapshot *snap = NULL;
    bool truncated = false;
    int rc;
    if (!c->out)
        return cli_usage(c, "the core file to write is required: -o FILE.core");
    if (cli_describe_snapshot(c, c->pos[0], true, &snap, &verdict, &diag) ||
        sbx_snapshot_write_core(snap, c->out, c->core_max, &truncated, &diag)) {
        rc = cli_report(c, &diag);
        goto out;
    }
    if (c->json) {
        rc = cj_emit(json_pack("{s:o, s:o, s:b}", "snapshot", cj_cstr(c->pos[0]), "core",
                               cj_cstr(c->out), "truncated", truncated), EXIT_OK_);
        goto out;
    }
    printf("%s: core file of %s%s\n", c->out, c->pos[0],
           truncated ? " (memory past --core-max left out)" : "");
    rc = EXIT_OK_;
out:
    sbx_snapshot_free(snap);
    return rc;
}

const struct cli_cmd cli_cmd_coredump = {
    .name = "coredump",
    .synopsis = "FILE.snap -o FILE.core",
    .summary = "write the snapshot's guest as an ELF core file for gdb (no KVM)",
    .details = "The registers the snapshot froze and its non-zero memory, at the guest's own\n"
               "addresses: `gdb GUEST.elf FILE.core` shows the stack, variables and memory.\n"
               "Written atomically; a snapshot of any version this build reads.\n",
    .min_pos = 1, .max_pos = 1,
    .opts = {
        { "output", 'o', "FILE.core", "the core file to write (required)", cli_set_out },
        CLI_OPT_CORE_MAX,
        CLI_OPTS_COMMON,
    },
    .run = coredump,
};
