/* cli.h - the snapbox command line: shared helpers of the subcommands. */
#ifndef SBX_CLI_H
#define SBX_CLI_H

#include <stdio.h>

#include "snapbox.h"

/* Exit codes, one per kind of failure (documented in README and --help). */
enum cli_exit {
    EXIT_OK_ = 0,
    EXIT_INTERNAL = 1,
    EXIT_USAGE = 2,
    EXIT_IO = 3,
    EXIT_BAD_ELF = 4,
    EXIT_VERSION = 5,
    EXIT_NO_NOTE = 6,
    EXIT_BAD_NOTE = 7,
    EXIT_KVM = 8,
    EXIT_GUEST_ABORT = 9,
    EXIT_GUEST_FAULT = 10,
    EXIT_TIMEOUT = 11,
    EXIT_GUEST_ABI = 12,
    EXIT_BAD_CALL = 13,
    EXIT_LIMIT = 14,
    EXIT_HOST_FN = 15,
    EXIT_SNAP_FORMAT = 16,
    EXIT_SNAP_CORRUPT = 17,
    EXIT_CPU = 18,
};

/* Print "snapbox: MESSAGE" and return the exit code for the error. */
int cli_report(const struct sbx_diag *diag);
int cli_exit_code(int err);
void cli_log(void *ctx, enum sbx_log_level level, const char *msg);

/* Parse text as a value of type t (bytes as hex); 0 or SBX_E_ARGS with diag. */
int cli_parse_value(const char *text, enum sbx_type t, struct sbx_value *out, void **owned,
                    struct sbx_diag *diag);
void cli_print_value(FILE *f, const struct sbx_value *v);

/* "64M" and friends; false on bad text. */
bool cli_parse_size(const char *text, uint64_t *out);
/* A new set of the CLI's host functions (host_add, host_greet) for
 * sbx_config.host_fns; free it with sbx_host_fns_free. NULL with diag filled
 * on failure. */
struct sbx_host_fns *cli_host_functions(struct sbx_diag *diag);

int cmd_inspect(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_call(int argc, char **argv);
int cmd_run(int argc, char **argv);
/* Call func on s with arguments parsed from texts; print the result; exit code. */
int cli_call(struct sbx_sandbox *s, const char *func, const char *const *texts, int ntexts);

#endif
