/* cmd_snapshot.c - `snapbox create | info | verify`: snapshot files. info and
 * verify describe a file of any version this build can read, with a verdict
 * line on whether it would be restored under the policy. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int emit_created(const struct cli *c, const struct sbx_snapshot *snap, double init_ms,
                        double write_ms)
{
    SBX_OPTS(sbx_snapshot_info, info);
    sbx_snapshot_info(snap, &info, NULL);
    if (c->json)
        return cj_emit(json_pack("{s:o, s:I, s:I, s:I, s:{s:f, s:f}}", "file", cj_cstr(c->out),
                                 "file_size", (json_int_t)info.file_size,
                                 "mem_size", (json_int_t)info.mem_size,
                                 "nonzero_pages", (json_int_t)info.nonzero_pages,
                                 "timing_ms", "load_init", init_ms, "snapshot_write", write_ms),
                       EXIT_OK_);
    printf("created %s: %llu bytes for %llu MiB of guest memory (%llu non-zero pages); "
           "load+init %.2f ms, snapshot+write %.2f ms\n",
           c->out, (unsigned long long)info.file_size, (unsigned long long)(info.mem_size >> 20),
           (unsigned long long)info.nonzero_pages, init_ms, write_ms);
    return EXIT_OK_;
}

/* One --warm call: "FUNC ARG..." split at spaces, arguments parsed by FUNC's
 * signature (an argument with spaces comes from a file: @FILE). */
static int warm_call(struct sbx_sandbox *s, const char *text, struct sbx_diag *diag)
{
    char *copy = strdup(text), *words[1 + SBX_MAX_ARGS + 1], *save = NULL;
    if (!copy) {
        *diag = (struct sbx_diag){ .code = SBX_E_NOMEM };
        return SBX_E_NOMEM;
    }
    int n = 0;
    for (char *w = strtok_r(copy, " ", &save); w && n < (int)(sizeof words / sizeof *words);
         w = strtok_r(NULL, " ", &save))
        words[n++] = w;
    struct cli_args a = { 0 };
    int rc = SBX_E_ARGS;
    if (n == 0)
        snprintf(diag->msg, sizeof diag->msg, "--warm '%s' names no function", text);
    else if ((rc = cli_args_parse(s, words[0], words + 1, n - 1, &a, diag)) == 0)
        rc = sbx_sandbox_call(s, words[0], a.v, (size_t)(n - 1), NULL, diag);
    diag->code = rc;
    cli_args_free(&a);
    free(copy);
    return rc;
}

static int create(struct cli *c)
{
    struct sbx_diag diag = { 0 };
    struct sbx_guest *g = NULL;
    struct sbx_sandbox *s = NULL;
    struct sbx_snapshot *snap = NULL;
    SBX_OPTS(sbx_snapshot_opts, sopts, .hc = c->hc);
    struct sbx_config cfg;
    int rc;
    if (!c->out)
        return cli_usage(c, "missing -o FILE.snap");
    struct sbx_host_fns *fns = cli_config(c, &cfg, &diag);
    double t0 = cli_now_ms();
    if (!fns || cli_load_guest(c, c->pos[0], &g, &diag) ||
        sbx_sandbox_create(g, &cfg, &s, &diag))
        goto fail;
    for (int i = 0; i < c->nwarm; i++)
        if (warm_call(s, c->warm[i], &diag))
            goto fail;
    double t1 = cli_now_ms();
    if (sbx_snapshot_take(s, &sopts, &snap, &diag) || sbx_snapshot_write(snap, c->out, &diag))
        goto fail;
    rc = emit_created(c, snap, t1 - t0, cli_now_ms() - t1);
    goto out;
fail:
    rc = cli_report(c, &diag);
out:
    sbx_snapshot_free(snap);
    sbx_sandbox_destroy(s);
    sbx_guest_free(g);
    sbx_host_fns_free(fns);
    return rc;
}

static void print_verdict(const struct cli *c, const char *label, const struct sbx_diag *v)
{
    printf("%s%s under policy %s%s%s\n", label, v->code ? "rejected" : "accepted",
           cli_policy_name(c->policy), v->code ? ": " : "", v->code ? v->msg : "");
}

static void print_signature(const struct sbx_func_info *f)
{
    printf("  %s(", f->name);
    for (size_t a = 0; a < f->nargs; a++)
        printf("%s%s", a ? ", " : "", sbx_type_name(f->args[a]));
    printf(") -> %s\n", sbx_type_name(f->ret));
}

static void print_info_text(const struct cli *c, const struct sbx_snapshot *snap,
                            const struct sbx_diag *verdict)
{
    SBX_OPTS(sbx_snapshot_info, i);
    sbx_snapshot_info(snap, &i, NULL);
    uint64_t raw = i.nonzero_pages * SBX_GUEST_PAGE_SIZE;
    printf("file:         %s\n", c->pos[0]);
    printf("format:       %u\n", i.format);
    printf("host:         snapbox %s (abi %u)\n", i.host.string, i.host.abi);
    if (i.guest_has_note)
        printf("guest:        snapbox %s (abi %u)\n", i.guest.string, i.guest.abi);
    else
        printf("guest:        unknown (no version note)\n");
    printf("guest elf:    xxh3 %016llx\n", (unsigned long long)i.guest_elf_hash);
    printf("cpu:          %s\n", i.cpu_vendor);
    printf("memory:       %llu MiB, %llu non-zero pages in %u chunks\n",
           (unsigned long long)(i.mem_size >> 20), (unsigned long long)i.nonzero_pages, i.nchunks);
    printf("compression:  %s, %llu stored bytes, ratio %.2f (non-zero bytes / stored)\n",
           i.hc ? "lz4hc" : "lz4", (unsigned long long)i.stored_bytes,
           i.stored_bytes ? (double)raw / (double)i.stored_bytes : 0.0);
    printf("file size:    %llu bytes\n", (unsigned long long)i.file_size);
    print_verdict(c, "verdict:      ", verdict);
    printf("functions:    %zu\n", i.nfuncs);
    SBX_OPTS(sbx_func_info, f);
    for (size_t k = 0; sbx_snapshot_function(snap, k, &f, NULL) == 0; k++)
        print_signature(&f);
}

static json_t *function_json(const struct sbx_func_info *f)
{
    json_t *args = json_array();
    for (size_t a = 0; args && a < f->nargs; a++)
        if (json_array_append_new(args, json_string(sbx_type_name(f->args[a])))) {
            json_decref(args);
            args = NULL;
        }
    return json_pack("{s:o, s:s, s:o}", "name", cj_cstr(f->name), "ret", sbx_type_name(f->ret),
                     "args", args);
}

static json_t *functions_json(const struct sbx_snapshot *snap)
{
    json_t *a = json_array();
    SBX_OPTS(sbx_func_info, f);
    for (size_t k = 0; a && sbx_snapshot_function(snap, k, &f, NULL) == 0; k++)
        if (json_array_append_new(a, function_json(&f))) {
            json_decref(a);
            a = NULL;
        }
    return a;
}

static int print_info_json(const struct cli *c, const struct sbx_snapshot *snap,
                           const struct sbx_diag *verdict)
{
    SBX_OPTS(sbx_snapshot_info, i);
    sbx_snapshot_info(snap, &i, NULL);
    char hash[17];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)i.guest_elf_hash);
    json_t *o = json_pack(
        "{s:o, s:I, s:o, s:I, s:o, s:o, s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:s, s:o}",
        "file", cj_cstr(c->pos[0]), "format", (json_int_t)i.format,
        "host_version", cj_cstr(i.host.string), "host_abi", (json_int_t)i.host.abi,
        "guest_version", i.guest_has_note ? cj_cstr(i.guest.string) : json_null(),
        "guest_abi", i.guest_has_note ? json_integer(i.guest.abi) : json_null(),
        "guest_elf_xxh3", hash, "cpu_vendor", cj_cstr(i.cpu_vendor),
        "mem_size", (json_int_t)i.mem_size, "nonzero_pages", (json_int_t)i.nonzero_pages,
        "chunks", (json_int_t)i.nchunks, "stored_bytes", (json_int_t)i.stored_bytes,
        "file_size", (json_int_t)i.file_size, "compression", i.hc ? "lz4hc" : "lz4",
        "functions", functions_json(snap));
    if (cj_add_verdict(o, c->policy, verdict)) {
        json_decref(o);
        o = NULL;
    }
    return cj_emit(o, EXIT_OK_);
}

static int info(struct cli *c)
{
    struct sbx_diag diag = { 0 }, verdict = { 0 };
    struct sbx_snapshot *snap = NULL;
    int rc;
    if (cli_describe_snapshot(c, c->pos[0], false, &snap, &verdict, &diag)) {
        rc = cli_report(c, &diag);
        goto out;
    }
    if (c->json) {
        rc = print_info_json(c, snap, &verdict);
        goto out;
    }
    print_info_text(c, snap, &verdict);
    rc = EXIT_OK_;
out:
    sbx_snapshot_free(snap);
    return rc;
}

static int verify(struct cli *c)
{
    struct sbx_diag diag = { 0 }, verdict = { 0 };
    struct sbx_snapshot *snap = NULL;
    SBX_OPTS(sbx_snapshot_info, i);
    int rc;
    if (cli_describe_snapshot(c, c->pos[0], true, &snap, &verdict, &diag) ||
        sbx_snapshot_verify(snap, &diag)) {
        rc = cli_report(c, &diag);
        goto out;
    }
    sbx_snapshot_info(snap, &i, NULL);
    if (c->json) {
        json_t *o = json_pack("{s:o, s:b, s:I}", "file", cj_cstr(c->pos[0]), "ok", 1,
                              "chunks", (json_int_t)i.nchunks);
        rc = cj_add_verdict(o, c->policy, &verdict) ? cj_emit(NULL, 0) : cj_emit(o, EXIT_OK_);
        goto out;
    }
    printf("%s: ok (header, index and %u chunk checksums verified; every chunk decompresses "
           "to its size)\n", c->pos[0], i.nchunks);
    print_verdict(c, "verdict: ", &verdict);
    rc = EXIT_OK_;
out:
    sbx_snapshot_free(snap);
    return rc;
}

static int set_hc(struct cli *c, const char *val)
{
    (void)val;
    c->hc = true;
    return 0;
}

static int add_warm(struct cli *c, const char *val)
{
    if (c->nwarm == CLI_MAX_WARM)
        return cli_usage(c, "at most %d --warm calls", CLI_MAX_WARM);
    c->warm[c->nwarm++] = val;
    return 0;
}

const struct cli_cmd cli_cmd_create = {
    .name = "create",
    .synopsis = "GUEST.elf -o FILE.snap",
    .summary = "initialise the guest in KVM and freeze it into a snapshot file",
    .details = "The file is written atomically: FILE.snap keeps its old content on any failure.\n",
    .min_pos = 1, .max_pos = 1,
    .opts = {
        { "output", 'o', "FILE.snap", "the snapshot file to write (required)", cli_set_out },
        { "hc", KEY_HC, NULL, "LZ4HC: smaller file, slower capture", set_hc },
        CLI_OPTS_LAYOUT,
        { "deadline", KEY_DEADLINE, "MS", "deadline for the guest's init and each --warm call "
          "(default 1000)", cli_set_deadline },
        { "warm", KEY_WARM, "'FUNC ARG...'", "call FUNC before the snapshot, so the warm state is "
          "captured (repeatable, in order; arguments split at spaces)", add_warm },
        CLI_OPTS_COMMON,
        CLI_OPTS_CORE,
    },
    .run = create,
};

const struct cli_cmd cli_cmd_info = {
    .name = "info",
    .synopsis = "FILE.snap|oci://REF",
    .summary = "versions, sizes, compression, functions and the verdict, from the header (no KVM)",
    .details = "Describes a snapshot of any snapbox version whose format this build reads, and\n"
               "says whether `call` would accept it under the policy (\"verdict: accepted under\n"
               "policy exact\" or \"verdict: rejected under policy exact: REASON\"); exits 0\n"
               "either way. Under --json, \"verdict\" and \"reason\" carry the same.\n",
    .min_pos = 1, .max_pos = 1,
    .opts = { CLI_OPTS_COMMON, CLI_OPTS_OCI },
    .run = info,
};

const struct cli_cmd cli_cmd_verify = {
    .name = "verify",
    .synopsis = "FILE.snap",
    .summary = "check every checksum and decompress every chunk (no KVM)",
    .details = "Exits 0 for a sound file of any version this build reads, with the verdict\n"
               "line of `snapbox info`; non-zero only when the file is damaged or unreadable\n"
               "(16 not a snapshot or another format, 17 corrupt, 3 I/O, 14 over a limit).\n",
    .min_pos = 1, .max_pos = 1,
    .opts = { CLI_OPTS_COMMON, CLI_OPTS_OCI },
    .run = verify,
};
