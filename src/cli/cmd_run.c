/* cmd_run.c - `snapbox run`: load a guest, initialise it in KVM, call one function. */
#include "cli.h"

static int run(struct cli *c)
{
    struct sbx_diag diag = { 0 };
    struct sbx_guest *g = NULL;
    struct sbx_sandbox *s = NULL;
    struct sbx_config cfg;
    int rc;
    struct sbx_host_fns *fns = cli_config(c, &cfg, &diag);
    double t0 = cli_now_ms();
    if (!fns || cli_load_guest(c, c->pos[0], &g, &diag) ||
        sbx_sandbox_create(g, &cfg, &s, &diag)) {
        rc = cli_report(c, &diag);
        goto out;
    }
    rc = cli_call_once(c, s, c->pos, c->npos, cli_now_ms() - t0);
out:
    sbx_sandbox_destroy(s);
    sbx_guest_free(g);
    sbx_host_fns_free(fns);
    return rc;
}

const struct cli_cmd cli_cmd_run = {
    .name = "run",
    .synopsis = "GUEST.elf FUNC [ARG...]",
    .summary = "load, check and initialise the guest in KVM, call FUNC, print the result",
    .details = "Arguments and the result as for `snapbox call` (see snapbox help call):\n"
               "parsed by FUNC's signature, bytes in hex, @FILE / @- / @@x for str and bytes,\n"
               "an argument that begins with '-' after `--`.\n",
    .min_pos = 2, .max_pos = 2 + SBX_MAX_ARGS,
    .opts = {
        CLI_OPTS_LAYOUT,
        { "deadline", KEY_DEADLINE, "MS", "deadline for init and the call (default 1000)",
          cli_set_deadline },
        CLI_OPTS_COMMON,
        CLI_OPTS_CORE,
        CLI_OPT_GDB,
    },
    .run = run,
};
