/* cmd_oci.c - push and pull snapshots to and from OCI registries, and
 * oci://REF wherever a snapshot file is named (cli_snapshot_source). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "snapbox_oci.h"

/* ---- progress: on a terminal only, on stderr ---- */
struct progress {
    double t0, last;
    uint64_t done;
    const char *what;
    bool shown;
};

static void human(uint64_t n, char *buf, size_t len)
{
    static const char *units[] = { "B", "KiB", "MiB", "GiB" };
    double v = (double)n;
    unsigned u = 0;
    while (v >= 1024 && u < 3)
        v /= 1024, u++;
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void on_progress(void *ctx, const char *what, uint64_t done, uint64_t total)
{
    struct progress *p = ctx;
    double now = cli_now_ms();
    if (p->what != what) { /* a new blob */
        if (p->shown)
            fputc('\n', stderr);
        p->what = what, p->t0 = now, p->last = 0, p->done = 0, p->shown = false;
    }
    if ((now - p->last < 100 && done != total) || (p->shown && done == p->done))
        return;
    p->done = done;
    p->last = now;
    char d[32], t[32], r[32];
    double secs = (now - p->t0) / 1000;
    human(done, d, sizeof d);
    human(total, t, sizeof t);
    human(secs > 0 ? (uint64_t)((double)done / secs) : 0, r, sizeof r);
    fprintf(stderr, "\r%s: %s / %s, %s/s   ", what, d, t, r);
    p->shown = true;
}

static void progress_end(struct progress *p)
{
    if (p->shown)
        fputc('\n', stderr);
}

/* The library's options from the command line; progress only on a TTY. */
static struct sbx_oci_opts oci_opts(const struct cli *c, struct progress *p)
{
    return (struct sbx_oci_opts){
        .sz = sizeof(struct sbx_oci_opts), .cache_dir = c->cache_dir, .ca_file = c->ca_file,
        .insecure = c->insecure, .policy = c->policy, .require_note = c->require_note,
        .no_cpu_check = c->no_cpu_check, .chunk_size = c->chunk_size,
        .max_send_rate = c->limit_rate, .log = cli_log,
        .progress = !c->json && isatty(STDERR_FILENO) ? on_progress : NULL, .progress_ctx = p,
    };
}

int cli_snapshot_source(const struct cli *c, const char *arg, char *path, size_t n,
                        struct sbx_diag *diag)
{
    if (!sbx_oci_is_ref(arg)) {
        if (strlen(arg) >= n) {
            diag->code = SBX_E_INVAL;
            snprintf(diag->msg, sizeof diag->msg, "%.200s...: path too long", arg);
            return diag->code;
        }
        snprintf(path, n, "%s", arg);
        return 0;
    }
    struct progress p = { 0 };
    struct sbx_oci_opts o = oci_opts(c, &p);
    SBX_OPTS(sbx_oci_result, res);
    int rc = sbx_oci_pull(arg, NULL, &o, &res, diag);
    progress_end(&p);
    if (rc)
        return rc;
    snprintf(path, n, "%s", res.path);
    return 0;
}

static json_t *blob_json(const char *digest, uint64_t size)
{
    return json_pack("{s:s, s:o}", "digest", digest, "size", cj_u64(size));
}

/* Push or pull c's arguments with progress; 0 or the reported exit code. */
static int transfer(struct cli *c, bool up, struct sbx_oci_result *r)
{
    struct sbx_diag diag = { 0 };
    struct progress p = { 0 };
    struct sbx_oci_opts o = oci_opts(c, &p);
    int rc = up ? sbx_oci_push(c->pos[0], c->pos[1], &o, r, &diag)
                : sbx_oci_pull(c->pos[0], c->out, &o, r, &diag);
    progress_end(&p);
    return rc ? cli_report(c, &diag) : 0;
}

static int push(struct cli *c)
{
    SBX_OPTS(sbx_oci_result, r);
    int rc = transfer(c, true, &r);
    if (rc)
        return rc;
    if (c->json)
        return cj_emit(json_pack("{s:o, s:o, s:s, s:o, s:o, s:o, s:I, s:I, s:o}", "file",
                                 cj_cstr(c->pos[0]), "reference", cj_cstr(c->pos[1]), "digest",
                                 r.manifest_digest, "manifest",
                                 blob_json(r.manifest_digest, r.manifest_size), "config",
                                 blob_json(r.config_digest, r.config_size), "layer",
                                 blob_json(r.layer_digest, r.layer_size), "blobs_uploaded",
                                 (json_int_t)r.blobs_uploaded, "blobs_skipped",
                                 (json_int_t)r.blobs_skipped, "bytes_uploaded",
                                 cj_u64(r.bytes_uploaded)), EXIT_OK_);
    printf("pushed %s: %s (%llu bytes; %u blobs uploaded, %u already there)\n", c->pos[1],
           r.manifest_digest, (unsigned long long)r.layer_size, r.blobs_uploaded, r.blobs_skipped);
    return EXIT_OK_;
}

static int pull(struct cli *c)
{
    SBX_OPTS(sbx_oci_result, r);
    int rc = transfer(c, false, &r);
    if (rc)
        return rc;
    const char *file = c->out ? c->out : r.path;
    if (c->json)
        return cj_emit(json_pack("{s:o, s:o, s:o, s:s, s:o, s:o, s:o, s:I, s:I, s:o}", "reference",
                                 cj_cstr(c->pos[0]), "file", cj_cstr(file), "cache",
                                 cj_cstr(r.path), "digest", r.manifest_digest, "manifest",
                                 blob_json(r.manifest_digest, r.manifest_size), "config",
                                 blob_json(r.config_digest, r.config_size), "layer",
                                 blob_json(r.layer_digest, r.layer_size), "blobs_downloaded",
                                 (json_int_t)r.blobs_downloaded, "blobs_cached",
                                 (json_int_t)r.blobs_cached, "bytes_downloaded",
                                 cj_u64(r.bytes_downloaded)), EXIT_OK_);
    printf("pulled %s: %s -> %s (%llu bytes; %u blobs downloaded, %u from the cache)\n",
           c->pos[0], r.manifest_digest, file, (unsigned long long)r.layer_size,
           r.blobs_downloaded, r.blobs_cached);
    return EXIT_OK_;
}

/* ---- options ---- */
int cli_set_cache(struct cli *c, const char *val)
{
    c->cache_dir = val;
    return 0;
}

int cli_set_ca_file(struct cli *c, const char *val)
{
    c->ca_file = val;
    return 0;
}

int cli_set_insecure(struct cli *c, const char *val)
{
    (void)val;
    c->insecure = true;
    return 0;
}

int cli_set_no_cpu_check(struct cli *c, const char *val)
{
    (void)val;
    c->no_cpu_check = true;
    return 0;
}

static int set_chunk_size(struct cli *c, const char *val)
{
    if (!cli_parse_size(val, &c->chunk_size) || !c->chunk_size)
        return cli_usage(c, "bad --chunk-size '%s' (bytes, e.g. 4M)", val);
    return 0;
}

static int set_limit_rate(struct cli *c, const char *val)
{
    if (!cli_parse_size(val, &c->limit_rate) || !c->limit_rate)
        return cli_usage(c, "bad --limit-rate '%s' (bytes per second, e.g. 10M)", val);
    return 0;
}

static int set_out(struct cli *c, const char *val)
{
    c->out = val;
    return 0;
}

#define REF_HELP                                                                             \
    "REF is HOST[:PORT]/REPO[:TAG] (tag \"latest\" by default) or\n"                          \
    "HOST[:PORT]/REPO@sha256:HEX, with or without oci://. HTTPS with the system's CAs\n"      \
    "(or --ca-file); plain HTTP only for loopback hosts or with --insecure.\n"              \
    "Credentials: SNAPBOX_REGISTRY_USER and SNAPBOX_REGISTRY_PASSWORD, else Docker's\n"     \
    "config.json ($DOCKER_CONFIG or ~/.docker); Basic and Bearer token challenges are\n"   \
    "answered. Progress (bytes, rate) on a terminal. docs/oci.md describes the\n"          \
    "artifact, the cache and the exit codes (19-24).\n"

const struct cli_cmd cli_cmd_push = {
    .name = "push",
    .synopsis = "FILE.snap REF",
    .summary = "push a snapshot to an OCI registry (config and layer blobs, then the manifest)",
    .details = "The file is checked completely first. Blobs the registry has already are not\n"
               "uploaded again (HEAD). --json prints the digests, sizes and blob counts.\n" REF_HELP,
    .min_pos = 2, .max_pos = 2,
    .opts = {
        CLI_OPTS_OCI,
        { "chunk-size", KEY_CHUNK_SIZE, "SIZE", "upload in PATCH chunks of SIZE, e.g. 8M",
          set_chunk_size },
        { "limit-rate", KEY_LIMIT_RATE, "RATE", "send at most RATE bytes per second, e.g. 10M",
          set_limit_rate },
        { "json", KEY_JSON, NULL, "print one JSON object on stdout, errors included",
          cli_set_json },
    },
    .run = push,
};

const struct cli_cmd cli_cmd_pull = {
    .name = "pull",
    .synopsis = "REF",
    .summary = "pull a snapshot from an OCI registry into the cache (and -o FILE.snap)",
    .details = "Header first: the manifest and the config are fetched and judged (format,\n"
               "layout ABI, guest version under --policy, CPU) before the snapshot itself.\n"
               "Blobs are checked against their SHA-256 digest while downloading and kept in\n"
               "the cache ($SNAPBOX_CACHE, $XDG_CACHE_HOME/snapbox or ~/.cache/snapbox); a\n"
               "blob already there is not downloaded again. A failed pull leaves no file.\n"
               REF_HELP,
    .min_pos = 1, .max_pos = 1,
    .opts = {
        { "output", 'o', "FILE.snap", "also write the snapshot here (atomically)", set_out },
        CLI_OPTS_OCI,
        { "no-cpu-check", KEY_NO_CPU_CHECK, NULL, "do not judge the CPU before downloading "
          "(a restore still does)", cli_set_no_cpu_check },
        CLI_OPTS_COMMON,
    },
    .run = pull,
};
