/* main.c - snapbox CLI entry: subcommand dispatch, help, errors and exit codes. */
#include <stdarg.h>
#include <string.h>

#include "cli.h"

static const struct cli_cmd *const commands[] = {
    &cli_cmd_inspect, &cli_cmd_run, &cli_cmd_create, &cli_cmd_info, &cli_cmd_verify, &cli_cmd_call,
    &cli_cmd_serve, &cli_cmd_push, &cli_cmd_pull, &cli_cmd_coredump,
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const char overview_tail[] =
    "\n"
    "Every command takes --help and --json (one JSON object on stdout, errors too:\n"
    "{\"error\": {\"code\": \"SBX_E_...\" or \"usage\", \"exit\": N, \"message\": \"...\"}}).\n"
    "Commands that load a guest or a snapshot take --policy exact|relaxed|abi (--relaxed is\n"
    "--policy relaxed) and --require-note. Options may come anywhere; `--` ends them, so a\n"
    "guest argument that begins with '-' goes after it: snapbox call f.snap neg -- -5\n"
    "Guest arguments are parsed by the function's signature (bool: true/false, bytes: hex);\n"
    "a str or bytes argument @FILE is the file's bytes, @- is stdin (at most 16 MiB),\n"
    "@@x is the literal text @x.\n"
    "\n"
    "exit codes:\n"
    "  0 ok            1 internal error     2 usage            3 file I/O\n"
    "  4 invalid ELF   5 version mismatch   6 no version note  7 malformed note\n"
    "  8 KVM failure   9 guest aborted     10 guest fault     11 timeout\n"
    "  12 guest broke the ABI   13 no such function or bad arguments\n"
    "  14 limit exceeded        15 host function failed\n"
    "  16 not a snapshot / another format   17 corrupt snapshot   18 CPU lacks features\n"
    "  registries (push, pull, oci://): 19 unreachable   20 transfer failed\n"
    "  21 authentication failed   22 not found   23 digest mismatch   24 bad registry reply\n";

static void print_overview(FILE *f)
{
    fputs("usage: snapbox COMMAND [OPTION...] [ARGS]\n       snapbox help [COMMAND]\n\n"
          "commands:\n", f);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %s %s\n        %s\n", commands[i]->name, commands[i]->synopsis,
                commands[i]->summary);
    fputs("  --help, --version\n", f);
    fputs(overview_tail, f);
}

/* One row per library error: its exit code and its name in JSON errors. */
static const struct { int code, exit; const char *name; } errors[] = {
    { SBX_OK, EXIT_OK_, "SBX_OK" },
    { SBX_E_INVAL, EXIT_USAGE, "SBX_E_INVAL" },
    { SBX_E_NOMEM, EXIT_INTERNAL, "SBX_E_NOMEM" },
    { SBX_E_IO, EXIT_IO, "SBX_E_IO" },
    { SBX_E_ELF, EXIT_BAD_ELF, "SBX_E_ELF" },
    { SBX_E_NOTE, EXIT_BAD_NOTE, "SBX_E_NOTE" },
    { SBX_E_VERSION, EXIT_VERSION, "SBX_E_VERSION" },
    { SBX_E_NO_NOTE, EXIT_NO_NOTE, "SBX_E_NO_NOTE" },
    { SBX_E_KVM, EXIT_KVM, "SBX_E_KVM" },
    { SBX_E_GUEST_ABORT, EXIT_GUEST_ABORT, "SBX_E_GUEST_ABORT" },
    { SBX_E_GUEST_FAULT, EXIT_GUEST_FAULT, "SBX_E_GUEST_FAULT" },
    { SBX_E_TIMEOUT, EXIT_TIMEOUT, "SBX_E_TIMEOUT" },
    { SBX_E_GUEST_ABI, EXIT_GUEST_ABI, "SBX_E_GUEST_ABI" },
    { SBX_E_POISONED, EXIT_GUEST_ABI, "SBX_E_POISONED" },
    { SBX_E_NO_FUNC, EXIT_BAD_CALL, "SBX_E_NO_FUNC" },
    { SBX_E_ARGS, EXIT_BAD_CALL, "SBX_E_ARGS" },
    { SBX_E_HOST_FN, EXIT_HOST_FN, "SBX_E_HOST_FN" },
    { SBX_E_LIMIT, EXIT_LIMIT, "SBX_E_LIMIT" },
    { SBX_E_SNAP_FORMAT, EXIT_SNAP_FORMAT, "SBX_E_SNAP_FORMAT" },
    { SBX_E_SNAP_CORRUPT, EXIT_SNAP_CORRUPT, "SBX_E_SNAP_CORRUPT" },
    { SBX_E_CPU, EXIT_CPU, "SBX_E_CPU" },
    { SBX_E_BUSY, EXIT_USAGE, "SBX_E_BUSY" },
    { SBX_E_UNREACHABLE, EXIT_UNREACHABLE, "SBX_E_UNREACHABLE" },
    { SBX_E_NET, EXIT_NET, "SBX_E_NET" },
    { SBX_E_AUTH, EXIT_AUTH, "SBX_E_AUTH" },
    { SBX_E_NOT_FOUND, EXIT_NOT_FOUND, "SBX_E_NOT_FOUND" },
    { SBX_E_DIGEST, EXIT_DIGEST, "SBX_E_DIGEST" },
    { SBX_E_REGISTRY, EXIT_REGISTRY, "SBX_E_REGISTRY" },
};

int cli_exit_code(int err)
{
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        if (errors[i].code == err)
            return errors[i].exit;
    return EXIT_INTERNAL;
}

/* NULL for a code this build does not know: JSON then carries the number. */
const char *cli_error_name(int err)
{
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        if (errors[i].code == err)
            return errors[i].name;
    return NULL;
}

int cli_report(const struct cli *c, const struct sbx_diag *diag)
{
    if (c->json)
        return cj_emit(cj_error(diag), cli_exit_code(diag->code));
    fprintf(stderr, "snapbox: %s\n", diag->msg[0] ? diag->msg : sbx_strerror(diag->code));
    return cli_exit_code(diag->code);
}

int cli_usage(const struct cli *c, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->json)
        return cj_emit(cj_usage_error(msg), EXIT_USAGE);
    fprintf(stderr, "snapbox %s: %s\n(see snapbox %s --help)\n", c->cmd->name, msg,
            c->cmd->name);
    return EXIT_USAGE;
}

void cli_log(void *ctx, enum sbx_log_level level, const char *msg)
{
    static const char *names[] = { "error", "warning", "info", "debug" };
    (void)ctx;
    fprintf(stderr, "snapbox: %s: %s\n", (unsigned)level < 4 ? names[level] : "log", msg);
}

static const struct cli_cmd *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(name, commands[i]->name))
            return commands[i];
    return NULL;
}

/* `snapbox help [COMMAND]`: the same text as --help. */
static int help(int argc, char **argv)
{
    if (argc < 3) {
        print_overview(stdout);
        return EXIT_OK_;
    }
    const struct cli_cmd *cmd = find_command(argv[2]);
    if (!cmd || argc > 3) {
        fprintf(stderr, "snapbox help: %s '%s'\n", cmd ? "unexpected argument" : "no command",
                argv[cmd ? 3 : 2]);
        return EXIT_USAGE;
    }
    cli_print_help(stdout, cmd);
    return EXIT_OK_;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_overview(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help"))
        return help(argc, argv);
    if (!strcmp(name, "--version")) {
        struct sbx_version v;
        sbx_host_version(&v);
        printf("snapbox %s (guest ABI %u)\n", v.string, v.abi);
        return EXIT_OK_;
    }
    struct cli c = { .cmd = find_command(name) };
    if (!c.cmd) {
        fprintf(stderr, "snapbox: unknown command '%s' (see snapbox help)\n", name);
        return EXIT_USAGE;
    }
    int rc = cli_parse(&c, argc - 1, argv + 1);
    if (rc || c.help)
        return rc;
    return c.cmd->run(&c);
}
