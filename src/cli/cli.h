/* cli.h - the snapbox command line: shared helpers of the subcommands. */
#ifndef SBX_CLI_H
#define SBX_CLI_H

#include <jansson.h>
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
    EXIT_UNREACHABLE = 19,
    EXIT_NET = 20,
    EXIT_AUTH = 21,
    EXIT_NOT_FOUND = 22,
    EXIT_DIGEST = 23,
    EXIT_REGISTRY = 24,
};

/* ---- Options: one parser (opts.c) for every subcommand's table ---------------- */
struct cli;

/* One option of a subcommand. arg names the value in the help ("SIZE"); NULL
 * for a flag. set stores it: 0, or EXIT_USAGE after cli_usage. */
struct cli_opt {
    const char *name;
    int key; /* a letter for a short option (-o), else an enum cli_key */
    const char *arg;
    const char *help;
    int (*set)(struct cli *c, const char *val);
};

/* Keys of the long-only options: above every letter, below nothing getopt uses. */
enum cli_key {
    KEY_JSON = 256, KEY_POLICY, KEY_RELAXED, KEY_REQUIRE_NOTE, KEY_MEM, KEY_DEADLINE,
    KEY_HC, KEY_TIME, KEY_REQUESTS, KEY_NO_SECCOMP, KEY_WARM, KEY_STACK, KEY_XCHG,
    KEY_LISTEN, KEY_LISTEN_ANY, KEY_POOL, KEY_WORKERS, KEY_QUEUE, KEY_STRATEGY, KEY_MAX_BODY,
    KEY_TOKEN_FILE,
    KEY_CACHE, KEY_CA_FILE, KEY_INSECURE, KEY_CHUNK_SIZE, KEY_LIMIT_RATE, KEY_NO_CPU_CHECK,
    KEY_CORE_DIR, KEY_CORE_MAX, KEY_CORE_FILES, KEY_GDB,
};

/* The options of every command that loads a guest or a snapshot (opts.c). */
int cli_set_json(struct cli *c, const char *val);
int cli_set_policy(struct cli *c, const char *val);
int cli_set_relaxed(struct cli *c, const char *val);
int cli_set_require_note(struct cli *c, const char *val);
/* The memory layout of a guest made from an ELF file, shared by run and create. */
#define CLI_OPTS_LAYOUT                                                                          \
    { "mem", KEY_MEM, "SIZE", "guest memory, e.g. 16M (default 8M); the heap is what the image, " \
      "the stack and the exchange area leave", cli_set_mem },                                    \
    { "stack", KEY_STACK, "SIZE", "guest stack, e.g. 4M (default 700K, below the image; a "      \
      "larger one goes above it)", cli_set_stack },                                              \
    { "xchg", KEY_XCHG, "SIZE", "exchange area for arguments and results, e.g. 4M (default "    \
      "256K, below the image; a larger one goes above it)", cli_set_xchg }

#define CLI_OPTS_COMMON                                                                        \
    { "json", KEY_JSON, NULL, "print one JSON object on stdout, errors included", cli_set_json }, \
    { "policy", KEY_POLICY, "POLICY", "version policy: exact (the default), relaxed or abi",   \
      cli_set_policy },                                                                        \
    { "relaxed", KEY_RELAXED, NULL, "the same as --policy relaxed", cli_set_relaxed },         \
    { "require-note", KEY_REQUIRE_NOTE, NULL, "refuse a guest without a version note",          \
      cli_set_require_note }
/* Registry options (cmd_oci.c) of push, pull and every command that takes oci://REF. */
int cli_set_cache(struct cli *c, const char *val);
int cli_set_ca_file(struct cli *c, const char *val);
int cli_set_insecure(struct cli *c, const char *val);
int cli_set_no_cpu_check(struct cli *c, const char *val);
#define CLI_OPTS_OCI                                                                           \
    { "cache", KEY_CACHE, "DIR", "keep pulled snapshots here (default: the XDG cache)",      \
      cli_set_cache },                                                                         \
    { "ca-file", KEY_CA_FILE, "FILE", "trust the registry CAs in FILE (PEM)", cli_set_ca_file }, \
    { "insecure", KEY_INSECURE, NULL, "allow plain HTTP and unverified TLS to any registry",   \
      cli_set_insecure }
/* Core dumps of a guest that faults, aborts or times out (cmd_debug.c):
 * run, call and create. */
int cli_set_core_dir(struct cli *c, const char *val);
int cli_set_core_max(struct cli *c, const char *val);
int cli_set_core_files(struct cli *c, const char *val);
int cli_set_gdb(struct cli *c, const char *val);
#define CLI_OPT_CORE_MAX                                                                         \
    { "core-max", KEY_CORE_MAX, "SIZE", "bytes of a core file at most (default 256M); memory "   \
      "past it is left out", cli_set_core_max }
#define CLI_OPTS_CORE                                                                            \
    { "core-dir", KEY_CORE_DIR, "DIR", "on a guest fault, abort or timeout write an ELF core "   \
      "file (for gdb) into DIR; the error names it", cli_set_core_dir },                         \
    CLI_OPT_CORE_MAX,                                                                            \
    { "core-files", KEY_CORE_FILES, "N", "core files DIR may hold (default 16); at the limit "   \
      "none is written", cli_set_core_files }
/* The gdb stub: run and call. */
#define CLI_OPT_GDB                                                                              \
    { "gdb", KEY_GDB, "127.0.0.1:PORT", "debugging session: wait for gdb there (loopback "     \
      "only), stopped before the guest's first instruction (run) or at the call (call)",        \
      cli_set_gdb }
#define CLI_OPTS_MAX 24

struct cli_cmd {
    const char *name;
    const char *synopsis; /* positional arguments, e.g. "FILE.snap FUNC [ARG...]" */
    const char *summary;  /* one line for `snapbox help` */
    const char *details;  /* the rest of its --help */
    int min_pos, max_pos;
    struct cli_opt opts[CLI_OPTS_MAX]; /* ends at the first entry without a name */
    int (*run)(struct cli *c);
};

/* Everything a command line can say; the parser fills it, the command reads it. */
struct cli {
    const struct cli_cmd *cmd;
    bool json, help, require_note, hc, timing, no_seccomp;
    enum sbx_version_policy policy;
    uint64_t mem_size, stack_size, xchg_size;
    uint32_t deadline_ms;
    long requests;
#define CLI_MAX_WARM 16
    const char *warm[CLI_MAX_WARM]; /* create --warm: calls made before the snapshot */
    int nwarm;
    const char *out;
    /* serve (cmd_serve.c) */
    const char *listen, *token_file, *strategy;
    bool listen_any;
    long pool, workers, queue;
    uint64_t max_body;
    const char *cache_dir, *ca_file; /* registries: --cache, --ca-file */
    bool insecure, no_cpu_check;
    uint64_t chunk_size, limit_rate;  /* push: --chunk-size, --limit-rate */
    char **pos; /* the positional arguments, options removed */
    int npos;
    const char *core_dir, *gdb; /* --core-dir, --gdb */
    uint64_t core_max;          /* --core-max */
    uint32_t core_files;        /* --core-files */
};

extern const struct cli_cmd cli_cmd_inspect, cli_cmd_run, cli_cmd_create, cli_cmd_info,
    cli_cmd_verify, cli_cmd_call;
extern const struct cli_cmd cli_cmd_serve, cli_cmd_push, cli_cmd_pull, cli_cmd_coredump;

/* Parse argv (argv[0] is the command name) by c->cmd's table: 0, or the exit
 * code (EXIT_USAGE after a message). --help sets c->help after printing. */
int cli_parse(struct cli *c, int argc, char **argv);
void cli_print_help(FILE *f, const struct cli_cmd *cmd);
const char *cli_policy_name(enum sbx_version_policy p);
/* "64M" and friends; false on bad text. */
bool cli_parse_size(const char *text, uint64_t *out);
/* Setters of --mem and --deadline, shared by the commands that take them. */
int cli_set_mem(struct cli *c, const char *val);
int cli_set_stack(struct cli *c, const char *val);
int cli_set_xchg(struct cli *c, const char *val);
int cli_set_deadline(struct cli *c, const char *val);
int cli_set_no_seccomp(struct cli *c, const char *val);
/* -o FILE: the file a command writes (create, coredump). */
int cli_set_out(struct cli *c, const char *val);

/* ---- Errors: text on stderr, or one JSON object on stdout under --json -------- */
int cli_exit_code(int err);
const char *cli_error_name(int err);
/* Report a library error; returns its exit code. */
int cli_report(const struct cli *c, const struct sbx_diag *diag);
/* Report a command line the CLI refuses; returns EXIT_USAGE. */
int cli_usage(const struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_log(void *ctx, enum sbx_log_level level, const char *msg);

/* ---- JSON (json.c): the only place JSON is written ------------------------------ */
/* A JSON string from any bytes: invalid UTF-8 becomes U+FFFD. NULL on OOM. */
json_t *cj_str(const void *s, size_t len);
json_t *cj_cstr(const char *s);
json_t *cj_value(const struct sbx_value *v);
/* An integer, or decimal text above INT64_MAX (jansson's integers are signed). */
json_t *cj_u64(uint64_t u);
json_t *cj_error(const struct sbx_diag *diag);
json_t *cj_usage_error(const char *msg);
/* Add "policy", "verdict" (accepted or rejected) and "reason" to o: 0 or -1. */
int cj_add_verdict(json_t *o, enum sbx_version_policy policy, const struct sbx_diag *verdict);
/* Print root as one line on stdout and free it; NULL (out of memory) gives
 * EXIT_INTERNAL, else ok_code. */
int cj_emit(json_t *root, int ok_code);

/* ---- Values (values.c) ------------------------------------------------------------ */
/* Parse text as a value of type t (bytes as hex; "@FILE", "@-" and "@@..." for
 * str and bytes); *owned is memory to free after the call. 0 or an error in diag. */
int cli_parse_value(const char *text, enum sbx_type t, struct sbx_value *out, void **owned,
                    struct sbx_diag *diag);
/* Hex text as bytes (out->type is left as set), malloc'd into *owned: the
 * one rule for bytes in text, shared by arguments and `serve` requests. */
int cli_parse_hex(const char *text, struct sbx_value *out, void **owned, struct sbx_diag *diag);
void cli_print_value(FILE *f, const struct sbx_value *v);
/* Lowercase hex of len bytes, malloc'd; NULL on OOM. */
char *cli_hex(const void *p, size_t len);

/* ---- The library's options structs (open.c): filled nowhere else ----------------- */
int cli_load_guest(const struct cli *c, const char *path, struct sbx_guest **out,
                   struct sbx_diag *diag);
/* The guest's version verdict under c's policy, for describing it. */
int cli_guest_verdict(const struct cli *c, const struct sbx_guest *g, struct sbx_diag *verdict);
/* Fill cfg from c, with a new set of the CLI's host functions (host_add,
 * host_greet): returns the caller's reference to free with sbx_host_fns_free
 * (sandboxes hold their own), or NULL with diag filled. */
struct sbx_host_fns *cli_config(const struct cli *c, struct sbx_config *cfg,
                                struct sbx_diag *diag);
/* Open a snapshot of any version this build can read, to describe it
 * (full: every chunk's checksum too); its verdict under c's policy in *verdict. */
int cli_describe_snapshot(const struct cli *c, const char *path, bool full,
                          struct sbx_snapshot **out, struct sbx_diag *verdict,
                          struct sbx_diag *diag);
/* Open a snapshot to restore it: the whole file, refused unless c's policy accepts it. */
int cli_open_snapshot(const struct cli *c, const char *path, struct sbx_snapshot **out,
                      struct sbx_diag *diag);

/* Where a command reads a snapshot named arg (cmd_oci.c): a plain path is
 * copied to path; "oci://REF" is pulled header-first into the verified cache
 * under c's policy and registry options (--cache, --ca-file, --insecure),
 * with progress on a terminal, and path names the cached file. 0, or an
 * sbx_error with diag filled (report it with cli_report). */
int cli_snapshot_source(const struct cli *c, const char *arg, char *path, size_t n,
                        struct sbx_diag *diag);

double cli_now_ms(void);

/* ---- Calls (cmd_call.c), shared by run and call --------------------------------- */
struct cli_args {
    const char *func;
    struct sbx_func_info fi;
    struct sbx_value v[SBX_MAX_ARGS];
    void *owned[SBX_MAX_ARGS];
};
/* Find func on s and parse texts by its signature: 0 or an error in diag. */
int cli_args_parse(struct sbx_sandbox *s, const char *func, char *const *texts, int ntexts,
                   struct cli_args *a, struct sbx_diag *diag);
void cli_args_free(struct cli_args *a);
/* Parse, call once, print the result; the exit code. */
int cli_call_once(const struct cli *c, struct sbx_sandbox *s, char *const *pos, int npos,
                  double setup_ms);

#endif
