/* cmd_snapshot.c - `snapbox create | info | verify | call`: snapshot files. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int cmd_create(int argc, char **argv)
{
    const char *elf = NULL, *out = NULL;
    SBX_OPTS(sbx_snapshot_opts, sopts);
    SBX_OPTS(sbx_load_opts, lopts, .log = cli_log);
    SBX_OPTS(sbx_config, cfg, .log = cli_log);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--hc"))
            sopts.hc = true;
        else if (!strcmp(argv[i], "--relaxed"))
            lopts.policy = SBX_VERSION_RELAXED;
        else if (!strcmp(argv[i], "--require-note"))
            lopts.require_note = true;
        else if (!strcmp(argv[i], "--mem") && i + 1 < argc) {
            if (!cli_parse_size(argv[++i], &cfg.mem_size)) {
                fprintf(stderr, "snapbox create: bad --mem size '%s'\n", argv[i]);
                return EXIT_USAGE;
            }
        } else if (!elf && argv[i][0] != '-')
            elf = argv[i];
        else {
            fprintf(stderr, "snapbox create: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!elf || !out) {
        fprintf(stderr, "usage: snapbox create GUEST.elf -o FILE.snap [--hc] [--mem SIZE]\n");
        return EXIT_USAGE;
    }
    struct sbx_diag diag = { 0 };
    struct sbx_guest *g = NULL;
    struct sbx_sandbox *s = NULL;
    struct sbx_snapshot *snap = NULL;
    int rc;
    double t0 = now_ms();
    struct sbx_host_fns *fns = cli_host_functions(&diag);
    cfg.host_fns = fns;
    if (!fns || sbx_guest_load(elf, &lopts, &g, &diag) || sbx_sandbox_create(g, &cfg, &s, &diag)) {
        rc = cli_report(&diag);
        goto out;
    }
    double t1 = now_ms();
    if (sbx_snapshot_take(s, &sopts, &snap, &diag) || sbx_snapshot_write(snap, out, &diag)) {
        rc = cli_report(&diag);
        goto out;
    }
    double t2 = now_ms();
    SBX_OPTS(sbx_snapshot_info, info);
    sbx_snapshot_info(snap, &info, NULL);
    printf("created %s: %llu bytes for %llu MiB of guest memory (%llu non-zero pages); "
           "load+init %.2f ms, snapshot+write %.2f ms\n",
           out, (unsigned long long)info.file_size, (unsigned long long)(info.mem_size >> 20),
           (unsigned long long)info.nonzero_pages, t1 - t0, t2 - t1);
    rc = EXIT_OK_;
out:
    sbx_snapshot_free(snap);
    sbx_sandbox_destroy(s);
    sbx_guest_free(g);
    sbx_host_fns_free(fns);
    return rc;
}

static void print_signature(const struct sbx_func_info *f)
{
    printf("  %s(", f->name);
    for (size_t a = 0; a < f->nargs; a++)
        printf("%s%s", a ? ", " : "", sbx_type_name(f->args[a]));
    printf(") -> %s\n", sbx_type_name(f->ret));
}

static void print_info_text(const struct sbx_snapshot *snap, const char *path)
{
    SBX_OPTS(sbx_snapshot_info, i);
    sbx_snapshot_info(snap, &i, NULL);
    uint64_t raw = i.nonzero_pages * SBX_GUEST_PAGE_SIZE;
    printf("file:         %s\n", path);
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
    printf("functions:    %zu\n", i.nfuncs);
    SBX_OPTS(sbx_func_info, f);
    for (size_t k = 0; sbx_snapshot_function(snap, k, &f, NULL) == 0; k++)
        print_signature(&f);
}

static void print_info_json(const struct sbx_snapshot *snap)
{
    SBX_OPTS(sbx_snapshot_info, i);
    sbx_snapshot_info(snap, &i, NULL);
    printf("{\"format\": %u, \"host_version\": \"%s\", \"host_abi\": %u, ", i.format,
           i.host.string, i.host.abi);
    if (i.guest_has_note)
        printf("\"guest_version\": \"%s\", ", i.guest.string);
    else
        printf("\"guest_version\": null, ");
    printf("\"mem_size\": %llu, \"nonzero_pages\": %llu, \"chunks\": %u, \"stored_bytes\": %llu, "
           "\"file_size\": %llu, \"compression\": \"%s\", \"functions\": [",
           (unsigned long long)i.mem_size, (unsigned long long)i.nonzero_pages, i.nchunks,
           (unsigned long long)i.stored_bytes, (unsigned long long)i.file_size,
           i.hc ? "lz4hc" : "lz4");
    SBX_OPTS(sbx_func_info, f);
    for (size_t k = 0; sbx_snapshot_function(snap, k, &f, NULL) == 0; k++) {
        printf("%s{\"name\": \"%s\", \"ret\": \"%s\", \"args\": [", k ? ", " : "", f.name,
               sbx_type_name(f.ret));
        for (size_t a = 0; a < f.nargs; a++)
            printf("%s\"%s\"", a ? ", " : "", sbx_type_name(f.args[a]));
        printf("]}");
    }
    printf("]}\n");
}

int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!path && argv[i][0] != '-')
            path = argv[i];
        else {
            fprintf(stderr, "usage: snapbox info FILE.snap [--json]\n");
            return EXIT_USAGE;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: snapbox info FILE.snap [--json]\n");
        return EXIT_USAGE;
    }
    struct sbx_diag diag = { 0 };
    struct sbx_snapshot *snap = NULL;
    if (sbx_snapshot_open_header(path, NULL, &snap, &diag))
        return cli_report(&diag);
    if (json)
        print_info_json(snap);
    else
        print_info_text(snap, path);
    sbx_snapshot_free(snap);
    return EXIT_OK_;
}

int cmd_verify(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: snapbox verify FILE.snap\n");
        return EXIT_USAGE;
    }
    struct sbx_diag diag = { 0 };
    struct sbx_snapshot *snap = NULL;
    if (sbx_snapshot_open(argv[1], NULL, &snap, &diag) || sbx_snapshot_verify(snap, &diag)) {
        sbx_snapshot_free(snap);
        return cli_report(&diag);
    }
    SBX_OPTS(sbx_snapshot_info, i);
    sbx_snapshot_info(snap, &i, NULL);
    printf("%s: ok (header, index and %u chunk checksums verified; every chunk decompresses "
           "to its size)\n", argv[1], i.nchunks);
    sbx_snapshot_free(snap);
    return EXIT_OK_;
}

/* One call per request on a sandbox from a template, reset after each:
 * the request-time path. Every request starts from the snapshot's state. */
static int serve_requests(const char *path, const char *func, const char *const *texts,
                          int ntexts, long requests, bool timing, struct sbx_config *cfg)
{
    struct sbx_diag diag = { 0 };
    struct sbx_template *t = NULL;
    struct sbx_pool *pool = NULL;
    struct sbx_sandbox *s = NULL;
    int rc = EXIT_OK_;
    double t0 = now_ms(), t1 = t0, t2 = t0, call_ms = 0, reset_ms = 0;
    if (sbx_template_open(path, NULL, &t, &diag))
        goto fail;
    t1 = now_ms();
    /* the pool is made before the request, as a server would */
    if (sbx_pool_create(sbx_template_mem_size(t), 1, &pool, &diag))
        goto fail;
    t2 = now_ms();
    if (sbx_sandbox_from_template(t, cfg, pool, &s, &diag))
        goto fail;
    double restore_ms = now_ms() - t2;
    for (long r = 0; r < requests && rc == EXIT_OK_; r++) {
        double c0 = now_ms();
        rc = cli_call(s, func, texts, ntexts);
        double c1 = now_ms();
        if (sbx_sandbox_reset(s, &diag))
            goto fail;
        call_ms += c1 - c0, reset_ms += now_ms() - c1;
    }
    if (timing)
        fprintf(stderr, "snapbox: template open %.2f ms, restore from pooled VM %.3f ms, then per "
                "request: call %.3f ms, reset %.3f ms (means of %ld)\n", t1 - t0, restore_ms,
                call_ms / (double)requests, reset_ms / (double)requests, requests);
    goto out;
fail:
    rc = cli_report(&diag);
out:
    sbx_sandbox_destroy(s);
    sbx_pool_free(pool);
    sbx_template_free(t);
    return rc;
}

int cmd_call(int argc, char **argv)
{
    const char *pos[2 + SBX_MAX_ARGS];
    int npos = 0;
    bool timing = false;
    long requests = 0;
    SBX_OPTS(sbx_config, cfg, .log = cli_log);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--time"))
            timing = true;
        else if (!strcmp(argv[i], "--requests") && i + 1 < argc) {
            char *end;
            requests = strtol(argv[++i], &end, 10);
            if (*end || requests < 1 || requests > 1000000) {
                fprintf(stderr, "snapbox call: --requests wants 1..1000000, not '%s'\n", argv[i]);
                return EXIT_USAGE;
            }
        } else if (npos < (int)(sizeof pos / sizeof pos[0]))
            pos[npos++] = argv[i];
        else {
            fprintf(stderr, "snapbox call: too many arguments\n");
            return EXIT_USAGE;
        }
    }
    if (npos < 2) {
        fprintf(stderr, "usage: snapbox call FILE.snap FUNC [ARG...] [--time] [--requests N]\n");
        return EXIT_USAGE;
    }
    struct sbx_diag diag = { 0 };
    struct sbx_snapshot *snap = NULL;
    struct sbx_sandbox *s = NULL;
    int rc;
    struct sbx_host_fns *fns = cli_host_functions(&diag);
    if (!fns)
        return cli_report(&diag);
    cfg.host_fns = fns;
    if (requests) {
        rc = serve_requests(pos[0], pos[1], pos + 2, npos - 2, requests, timing, &cfg);
        goto out;
    }
    double t0 = now_ms();
    if (sbx_snapshot_open(pos[0], NULL, &snap, &diag) || sbx_sandbox_restore(snap, &cfg, &s, &diag)) {
        rc = cli_report(&diag);
        goto out;
    }
    double t1 = now_ms();
    rc = cli_call(s, pos[1], pos + 2, npos - 2);
    if (timing)
        fprintf(stderr, "snapbox: restore from file took %.2f ms, the call %.2f ms\n", t1 - t0,
                now_ms() - t1);
out:
    sbx_sandbox_destroy(s);
    sbx_snapshot_free(snap);
    sbx_host_fns_free(fns);
    return rc;
}
