/* push.c - a snapshot file into a registry: config and layer blobs (each
 * skipped when a HEAD finds it there), then the manifest under the tag. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "oci.h"

/* One blob to push: bytes in memory, or a file. */
struct blob {
    const char *what, *media_type;
    char digest[SBX_OCI_DIGEST_MAX];
    uint64_t size;
    const uint8_t *mem;
    int fd;
};

/* Location is absolute or a path on the registry; the digest goes in its query. */
static void location_url(const char *loc, const char *digest, char *out, size_t n)
{
    snprintf(out, n, "%s%s%s%s", loc, digest ? (strchr(loc, '?') ? "&" : "?") : "",
             digest ? "digest=" : "", digest ? digest : "");
}

static int start_upload(struct oci_client *cl, const char *label, char *loc, size_t n,
                        struct sbx_diag *diag)
{
    char url[OCI_URL_MAX];
    snprintf(url, sizeof url, "/v2/%s/blobs/uploads/", cl->ref.repo);
    struct oci_req q = { .method = "POST", .url = url, .body_fd = -1, .what = label,
                         .max_body = 64 << 10 };
    struct oci_resp r = { 0 };
    int rc = oci_request(cl, &q, &r, diag);
    if (rc == 0 && r.status != 202)
        rc = oci_status_fail(cl, &q, &r, diag);
    if (rc == 0 && !r.location[0])
        rc = sbx_fail(diag, SBX_E_REGISTRY, "%s: the registry started an upload without a "
                      "Location", label);
    if (rc == 0)
        snprintf(loc, n, "%s", r.location);
    oci_resp_free(&r);
    return rc;
}

/* PATCH each chunk with its Content-Range; every reply names the next Location. */
static int send_chunks(struct oci_client *cl, const struct blob *b, const char *label, char *loc,
                       size_t n, struct sbx_diag *diag)
{
    for (uint64_t off = 0; off < b->size;) {
        uint64_t len = b->size - off < cl->o.chunk_size ? b->size - off : cl->o.chunk_size;
        char range[64];
        snprintf(range, sizeof range, "%llu-%llu", (unsigned long long)off,
                 (unsigned long long)(off + len - 1));
        struct oci_req q = { .method = "PATCH", .url = loc, .what = label,
                             .content_type = "application/octet-stream", .content_range = range,
                             .body = b->mem ? b->mem + off : NULL, .body_fd = b->fd,
                             .body_off = off, .body_len = len, .max_body = 64 << 10,
                             .progress = b->what, .progress_total = b->size };
        struct oci_resp r = { 0 };
        int rc = oci_request(cl, &q, &r, diag);
        if (rc == 0 && r.status != 202)
            rc = oci_status_fail(cl, &q, &r, diag);
        if (rc == 0 && !r.location[0])
            rc = sbx_fail(diag, SBX_E_REGISTRY, "%s: a chunk was taken without a next Location",
                          label);
        if (rc == 0)
            snprintf(loc, n, "%s", r.location);
        oci_resp_free(&r);
        if (rc)
            return rc;
        off += len;
    }
    return 0;
}

static int upload(struct oci_client *cl, const struct blob *b, const char *label,
                  struct sbx_diag *diag)
{
    char loc[OCI_URL_MAX], url[OCI_URL_MAX + 80];
    int rc = start_upload(cl, label, loc, sizeof loc, diag);
    bool chunked = cl->o.chunk_size && b->size > cl->o.chunk_size;
    if (rc == 0 && chunked)
        rc = send_chunks(cl, b, label, loc, sizeof loc, diag);
    if (rc)
        return rc;
    location_url(loc, b->digest, url, sizeof url);
    struct oci_req q = { .method = "PUT", .url = url, .what = label,
                         .content_type = "application/octet-stream",
                         .body = chunked ? NULL : b->mem, .body_fd = chunked ? -1 : b->fd,
                         .body_len = chunked ? 0 : b->size, .max_body = 64 << 10,
                         .progress = chunked ? NULL : b->what, .progress_total = b->size };
    struct oci_resp r = { 0 };
    if ((rc = oci_request(cl, &q, &r, diag)) == 0 && r.status != 201)
        rc = oci_status_fail(cl, &q, &r, diag);
    if (rc == 0 && r.digest[0] && strcmp(r.digest, b->digest))
        rc = sbx_fail(diag, SBX_E_DIGEST, "%s: the registry stored it as %s", label, r.digest);
    oci_resp_free(&r);
    return rc;
}

/* HEAD first: a blob the registry has is not sent again. */
static int push_blob(struct oci_client *cl, const struct blob *b, struct sbx_oci_result *res,
                     struct sbx_diag *diag)
{
    char url[OCI_URL_MAX], label[OCI_LABEL_MAX];
    snprintf(url, sizeof url, "/v2/%s/blobs/%s", cl->ref.repo, b->digest);
    snprintf(label, sizeof label, "%s blob %s to %s", b->what, b->digest, cl->ref.text);
    struct oci_req q = { .method = "HEAD", .url = url, .body_fd = -1, .what = label };
    struct oci_resp r = { 0 };
    int rc = oci_request(cl, &q, &r, diag);
    long st = r.status;
    oci_resp_free(&r);
    if (rc)
        return rc;
    if (st == 200) {
        res->blobs_skipped++;
        return 0;
    }
    if (st != 404)
        return oci_status_fail(cl, &q, &r, diag);
    if ((rc = upload(cl, b, label, diag)))
        return rc;
    res->blobs_uploaded++;
    res->bytes_uploaded += b->size;
    return 0;
}

/* RFC 3339, from SOURCE_DATE_EPOCH when set (reproducible manifests). */
static void created_now(char *out, size_t n)
{
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    time_t t = sde && *sde ? (time_t)strtoll(sde, NULL, 10) : time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static char *manifest_make(const struct blob *config, const struct blob *layer, const char *path)
{
    char created[32];
    created_now(created, sizeof created);
    const char *slash = strrchr(path, '/');
    const char *title = slash ? slash + 1 : path;
    json_t *root = json_pack(
        "{s:i, s:s, s:s, s:{s:s, s:s, s:I}, s:[{s:s, s:s, s:I, s:{s:s}}], s:{s:s, s:s}}",
        "schemaVersion", 2, "mediaType", OCI_MANIFEST_TYPE, "artifactType",
        SBX_OCI_ARTIFACT_TYPE, "config", "mediaType", config->media_type, "digest",
        config->digest, "size", (json_int_t)config->size, "layers", "mediaType",
        layer->media_type, "digest", layer->digest, "size", (json_int_t)layer->size,
        "annotations", "org.opencontainers.image.title", title, "annotations",
        "org.opencontainers.image.created", created, "org.opencontainers.image.title", title);
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return text;
}

static int put_manifest(struct oci_client *cl, const char *manifest, struct sbx_oci_result *res,
                        struct sbx_diag *diag)
{
    size_t len = strlen(manifest);
    int rc = oci_digest_mem(manifest, len, res->manifest_digest, diag);
    if (rc)
        return rc;
    res->manifest_size = len;
    char url[OCI_URL_MAX], label[OCI_LABEL_MAX];
    snprintf(url, sizeof url, "/v2/%s/manifests/%s", cl->ref.repo, cl->ref.tag);
    snprintf(label, sizeof label, "manifest %s", cl->ref.text);
    struct oci_req q = { .method = "PUT", .url = url, .what = label,
                         .content_type = OCI_MANIFEST_TYPE, .body = (const uint8_t *)manifest,
                         .body_fd = -1, .body_len = len, .max_body = 64 << 10 };
    struct oci_resp r = { 0 };
    if ((rc = oci_request(cl, &q, &r, diag)) == 0 && r.status != 201)
        rc = oci_status_fail(cl, &q, &r, diag);
    if (rc == 0 && r.digest[0] && strcmp(r.digest, res->manifest_digest))
        rc = sbx_fail(diag, SBX_E_DIGEST, "%s: the registry stored it as %s, not %s", label,
                      r.digest, res->manifest_digest);
    oci_resp_free(&r);
    return rc;
}

/* The file, checked completely, and its config and layer descriptors. */
static int describe(const char *path, const struct sbx_oci_opts *o, struct blob *config,
                    struct blob *layer, char **config_text, struct sbx_diag *diag)
{
    SBX_OPTS(sbx_snapshot_open_opts, so, .policy = SBX_VERSION_ABI,
             .max_file_size = o->max_file_size);
    struct sbx_snapshot *snap = NULL;
    size_t clen = 0;
    int rc = sbx_snapshot_open(path, &so, &snap, diag);
    if (rc == 0)
        rc = oci_config_make(snap, config_text, &clen, diag);
    sbx_snapshot_free(snap);
    if (rc || (rc = oci_digest_mem(*config_text, clen, config->digest, diag)))
        return rc;
    config->mem = (const uint8_t *)*config_text;
    config->size = clen;
    uint64_t size;
    if ((rc = sbx_open_regular(path, o->max_file_size, &layer->fd, &size, diag)))
        return rc;
    return oci_digest_fd(layer->fd, path, layer->digest, &layer->size, diag);
}

int sbx_oci_push(const char *path, const char *ref, const struct sbx_oci_opts *opts,
                 struct sbx_oci_result *out, struct sbx_diag *diag)
{
    if (!path || !ref)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_oci_push: a file and a reference are required");
    struct oci_client cl;
    struct sbx_oci_result res = { .sz = sizeof res };
    struct blob config = { .what = "config", .media_type = SBX_OCI_CONFIG_TYPE, .fd = -1 };
    struct blob layer = { .what = "layer", .media_type = SBX_OCI_LAYER_TYPE, .fd = -1 };
    char *config_text = NULL, *manifest = NULL;
    int rc = oci_client_open(&cl, ref, opts, true, diag);
    if (rc == 0 && !cl.ref.tag[0])
        rc = sbx_fail(diag, SBX_E_INVAL, "'%s': push needs a tag (REPO:TAG), not a digest", ref);
    if (rc || (rc = describe(path, &cl.o, &config, &layer, &config_text, diag)))
        goto out;
    if ((rc = push_blob(&cl, &config, &res, diag)) || (rc = push_blob(&cl, &layer, &res, diag)))
        goto out;
    if (!(manifest = manifest_make(&config, &layer, path))) {
        rc = sbx_fail(diag, SBX_E_NOMEM, "%s: out of memory for the manifest", path);
        goto out;
    }
    if ((rc = put_manifest(&cl, manifest, &res, diag)))
        goto out;
    rc = oci_result_out(&res, config.digest, config.size, layer.digest, layer.size, out, diag);
out:
    if (layer.fd >= 0)
        close(layer.fd);
    free(config_text);
    free(manifest);
    oci_client_close(&cl);
    return rc;
}
