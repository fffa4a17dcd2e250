/* main.c - snapbox CLI entry: subcommand dispatch, help, exit codes. */
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: snapbox COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  inspect GUEST.elf [--require-note] [--relaxed] [--json]\n"
    "        show entry point, segments, version note and the version verdict\n"
    "  run GUEST.elf FUNC [ARG...] [--mem SIZE] [--deadline MS] [--relaxed] [--require-note]\n"
    "        load, check and initialise the guest in KVM, call FUNC, print the result\n"
    "        (arguments are parsed by FUNC's signature; bytes are written in hex)\n"
    "  create GUEST.elf -o FILE.snap [--hc] [--mem SIZE] [--relaxed] [--require-note]\n"
    "        initialise the guest in KVM and freeze it into a snapshot file\n"
    "  info FILE.snap [--json]\n"
    "        versions, sizes, compression and functions, from the header alone (no KVM)\n"
    "  verify FILE.snap\n"
    "        check every checksum and decompress every chunk (no KVM)\n"
    "  call FILE.snap FUNC [ARG...] [--time] [--requests N]\n"
    "        restore the snapshot in KVM and call FUNC (arguments by its stored signature);\n"
    "        --requests N: N requests on a sandbox from a template, reset after each\n"
    "  --help, --version\n"
    "\n"
    "exit codes:\n"
    "  0 ok            1 internal error     2 usage            3 file I/O\n"
    "  4 invalid ELF   5 version mismatch   6 no version note  7 malformed note\n"
    "  8 KVM failure   9 guest aborted     10 guest fault     11 timeout\n"
    "  12 guest broke the ABI   13 no such function or bad arguments\n"
    "  14 limit exceeded        15 host function failed\n"
    "  16 not a snapshot / another format   17 corrupt snapshot   18 CPU lacks features\n";

int cli_exit_code(int err)
{
    switch (err) {
    case SBX_OK: return EXIT_OK_;
    case SBX_E_INVAL: return EXIT_USAGE;
    case SBX_E_IO: return EXIT_IO;
    case SBX_E_ELF: return EXIT_BAD_ELF;
    case SBX_E_VERSION: return EXIT_VERSION;
    case SBX_E_NO_NOTE: return EXIT_NO_NOTE;
    case SBX_E_NOTE: return EXIT_BAD_NOTE;
    case SBX_E_KVM: return EXIT_KVM;
    case SBX_E_GUEST_ABORT: return EXIT_GUEST_ABORT;
    case SBX_E_GUEST_FAULT: return EXIT_GUEST_FAULT;
    case SBX_E_TIMEOUT: return EXIT_TIMEOUT;
    case SBX_E_GUEST_ABI:
    case SBX_E_POISONED: return EXIT_GUEST_ABI;
    case SBX_E_BUSY: return EXIT_USAGE;
    case SBX_E_NO_FUNC:
    case SBX_E_ARGS: return EXIT_BAD_CALL;
    case SBX_E_LIMIT: return EXIT_LIMIT;
    case SBX_E_HOST_FN: return EXIT_HOST_FN;
    case SBX_E_SNAP_FORMAT: return EXIT_SNAP_FORMAT;
    case SBX_E_SNAP_CORRUPT: return EXIT_SNAP_CORRUPT;
    case SBX_E_CPU: return EXIT_CPU;
    default: return EXIT_INTERNAL;
    }
}

int cli_report(const struct sbx_diag *diag)
{
    fprintf(stderr, "snapbox: %s\n", diag->msg[0] ? diag->msg : sbx_strerror(diag->code));
    return cli_exit_code(diag->code);
}

void cli_log(void *ctx, enum sbx_log_level level, const char *msg)
{
    static const char *names[] = { "error", "warning", "info", "debug" };
    (void)ctx;
    fprintf(stderr, "snapbox: %s: %s\n", (unsigned)level < 4 ? names[level] : "log", msg);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return EXIT_OK_;
    }
    if (!strcmp(cmd, "--version")) {
        struct sbx_version v;
        sbx_host_version(&v);
        printf("snapbox %s (guest ABI %u)\n", v.string, v.abi);
        return EXIT_OK_;
    }
    static const struct { const char *name; int (*fn)(int, char **); } cmds[] = {
        { "inspect", cmd_inspect }, { "run", cmd_run }, { "create", cmd_create },
        { "info", cmd_info }, { "verify", cmd_verify }, { "call", cmd_call },
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(cmd, cmds[i].name))
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "snapbox: unknown command '%s'\n%s", cmd, usage);
    return EXIT_USAGE;
}
