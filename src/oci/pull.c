/* pull.c - a snapshot from a registry, header first: the manifest, then the
 * config, judged by the library's own compatibility rules, and only then
 * the layer; every blob through the verified cache. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oci.h"

struct desc {
    char digest[SBX_OCI_DIGEST_MAX];
    uint64_t size;
};

static int desc_of(json_t *d, const char *media_type, const char *what, struct desc *out,
                   struct sbx_diag *diag)
{
    const char *mt = json_string_value(json_object_get(d, "mediaType"));
    const char *dg = json_string_value(json_object_get(d, "digest"));
    json_t *size = json_object_get(d, "size");
    if (!json_is_object(d) || !dg || !oci_digest_valid(dg) || !json_is_integer(size) ||
        json_integer_value(size) < 0)
        return sbx_fail(diag, SBX_E_REGISTRY, "%s: malformed descriptor (mediaType, sha256 "
                        "digest, size)", what);
    if (!mt || strcmp(mt, media_type))
        return sbx_fail(diag, SBX_E_REGISTRY, "%s: media type '%.80s', want '%s': not a "
                        "snapbox snapshot", what, mt ? mt : "(none)", media_type);
    snprintf(out->digest, sizeof out->digest, "%s", dg);
    out->size = (uint64_t)json_integer_value(size);
    return 0;
}

/* schemaVersion 2, an OCI image manifest, a snapbox config and one layer. */
static int parse_manifest(const uint8_t *p, size_t len, const char *what, struct desc *config,
                          struct desc *layer, struct sbx_diag *diag)
{
    json_error_t err;
    json_t *root = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return sbx_fail(diag, SBX_E_REGISTRY, "%s: not JSON: %s", what, err.text);
    json_t *sv = json_object_get(root, "schemaVersion"), *layers = json_object_get(root, "layers");
    const char *mt = json_string_value(json_object_get(root, "mediaType"));
    char lwhat[OCI_LABEL_MAX + 16], cwhat[OCI_LABEL_MAX + 16];
    snprintf(cwhat, sizeof cwhat, "%s: config", what);
    snprintf(lwhat, sizeof lwhat, "%s: layer", what);
    int rc;
    if (!json_is_integer(sv) || json_integer_value(sv) != 2 || (mt && strcmp(mt, OCI_MANIFEST_TYPE)))
        rc = sbx_fail(diag, SBX_E_REGISTRY, "%s: not an OCI image manifest (schemaVersion 2, "
                      "mediaType %s)", what, OCI_MANIFEST_TYPE);
    else if (json_array_size(layers) != 1)
        rc = sbx_fail(diag, SBX_E_REGISTRY, "%s: %zu layers; a snapbox artifact has one",
                      what, json_array_size(layers));
    else if ((rc = desc_of(json_object_get(root, "config"), SBX_OCI_CONFIG_TYPE, cwhat, config,
                           diag)) == 0)
        rc = desc_of(json_array_get(layers, 0), SBX_OCI_LAYER_TYPE, lwhat, layer, diag);
    json_decref(root);
    return rc;
}

/* A manifest pinned by digest and already cached: 1 when taken from there. */
static int cached_manifest(const char *cache, const struct oci_ref *r, struct oci_buf *m,
                           struct sbx_oci_result *res, struct sbx_diag *diag)
{
    char path[SBX_OCI_PATH_MAX];
    size_t len;
    struct sbx_diag none;
    if (!r->digest[0] || oci_cache_path(cache, r->digest, path, sizeof path, &none) ||
        sbx_read_file(path, SBX_OCI_MAX_MANIFEST, &m->p, &len, &none))
        return 0;
    m->len = len;
    int rc = oci_digest_mem(m->p, len, res->manifest_digest, diag);
    if (rc == 0 && strcmp(res->manifest_digest, r->digest))
        rc = sbx_fail(diag, SBX_E_DIGEST, "%s: the cached manifest %s does not match its "
                      "digest: remove it", r->text, path);
    return rc ? rc : 1;
}

/* The manifest: from the cache when the reference pins its digest, else
 * from the registry, checked against the pinned or announced digest. */
static int get_manifest(struct oci_client *cl, const char *cache, struct oci_buf *m,
                        struct sbx_oci_result *res, struct sbx_diag *diag)
{
    char url[OCI_URL_MAX], what[OCI_LABEL_MAX];
    const struct oci_ref *r = &cl->ref;
    int rc = cached_manifest(cache, r, m, res, diag);
    if (rc)
        return rc < 0 ? rc : 0;
    snprintf(what, sizeof what, "manifest %s", r->text);
    snprintf(url, sizeof url, "/v2/%s/manifests/%s", r->repo, r->digest[0] ? r->digest : r->tag);
    struct oci_req q = { .method = "GET", .url = url, .body_fd = -1, .what = what,
                         .accept = OCI_MANIFEST_TYPE, .max_body = SBX_OCI_MAX_MANIFEST };
    struct oci_resp resp = { 0 };
    if ((rc = oci_request(cl, &q, &resp, diag)) == 0 && resp.status != 200)
        rc = oci_status_fail(cl, &q, &resp, diag);
    if (rc == 0)
        rc = oci_digest_mem(resp.body.p ? resp.body.p : (const uint8_t *)"", resp.body.len,
                            res->manifest_digest, diag);
    const char *want = r->digest[0] ? r->digest : resp.digest;
    if (rc == 0 && want[0] && strcmp(want, res->manifest_digest))
        rc = sbx_fail(diag, SBX_E_DIGEST, "%s: digest mismatch: the manifest received hashes to "
                      "%s, not %s", what, res->manifest_digest, want);
    if (rc == 0)
        rc = oci_cache_put(cache, res->manifest_digest, resp.body.p, resp.body.len, diag);
    if (rc == 0) {
        *m = resp.body;
        resp.body = (struct oci_buf){ 0 };
    }
    oci_resp_free(&resp);
    return rc;
}

/* Where a pull may leave the CPU check to the restore: no usable /dev/kvm. */
static int judge_cpu(const struct oci_client *cl, const struct sbx_snap_facts *f, const char *what,
                     struct sbx_diag *diag)
{
    if (cl->o.no_cpu_check)
        return 0;
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    struct sbx_cpu_facts cpu;
    struct sbx_diag why = { 0 };
    if (fd < 0 || sbx_kvm_cpu_facts(fd, &cpu, &why)) {
        sbx_logf(cl->o.log, cl->o.log_ctx, SBX_LOG_WARN, "%s: CPU check left to the restore: "
                 "%s", what, fd < 0 ? "/dev/kvm cannot be opened" : why.msg);
        if (fd >= 0)
            close(fd);
        return 0;
    }
    close(fd);
    return sbx_snap_judge_cpu(f, &cpu, what, diag);
}

/* The config: fetched (or cached), bounded, and judged. */
static int judge_config(struct oci_client *cl, const char *cache, const struct desc *config,
                        struct sbx_oci_result *res, struct sbx_diag *diag)
{
    char path[SBX_OCI_PATH_MAX], what[OCI_LABEL_MAX];
    snprintf(what, sizeof what, "%s (config %s)", cl->ref.text, config->digest);
    if (config->size > SBX_OCI_MAX_CONFIG)
        return sbx_fail(diag, SBX_E_LIMIT, "%s: the config is %llu bytes, over the limit of "
                        "%llu", what, (unsigned long long)config->size,
                        (unsigned long long)SBX_OCI_MAX_CONFIG);
    int rc = oci_blob_fetch(cl, cache, config->digest, config->size, "config", path, sizeof path,
                            diag);
    if (rc < 0)
        return rc;
    if (rc == 1)
        res->blobs_cached++;
    else
        res->blobs_downloaded++, res->bytes_downloaded += config->size;
    uint8_t *buf = NULL;
    size_t len = 0;
    struct sbx_snap_facts f;
    if ((rc = sbx_read_file(path, SBX_OCI_MAX_CONFIG, &buf, &len, diag)) == 0 &&
        (rc = oci_config_facts(buf, len, what, &f, diag)) == 0 &&
        (rc = sbx_snap_judge(&f, cl->o.policy, cl->o.require_note, cl->ref.text, diag)) == 0)
        rc = judge_cpu(cl, &f, cl->ref.text, diag);
    free(buf);
    return rc;
}

static int fetch_layer(struct oci_client *cl, const char *cache, const struct desc *layer,
                       struct sbx_oci_result *res, struct sbx_diag *diag)
{
    if (layer->size > cl->o.max_file_size)
        return sbx_fail(diag, SBX_E_LIMIT, "%s: the snapshot is %llu bytes, over the limit of "
                        "%llu", cl->ref.text, (unsigned long long)layer->size,
                        (unsigned long long)cl->o.max_file_size);
    int rc = oci_blob_fetch(cl, cache, layer->digest, layer->size, "layer", res->path,
                            sizeof res->path, diag);
    if (rc < 0)
        return rc;
    if (rc == 1)
        res->blobs_cached++;
    else
        res->blobs_downloaded++, res->bytes_downloaded += layer->size;
    return 0;
}

int sbx_oci_pull(const char *ref, const char *dest, const struct sbx_oci_opts *opts,
                 struct sbx_oci_result *out, struct sbx_diag *diag)
{
    if (!ref)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_oci_pull: a reference is required");
    struct oci_client cl;
    struct sbx_oci_result res = { .sz = sizeof res };
    struct oci_buf m = { 0 };
    struct desc config, layer;
    char cache[SBX_OCI_PATH_MAX], what[OCI_LABEL_MAX];
    int rc = oci_client_open(&cl, ref, opts, false, diag);
    if (rc || (rc = oci_cache_dir(&cl.o, cache, sizeof cache, diag)) ||
        (rc = get_manifest(&cl, cache, &m, &res, diag)))
        goto out;
    snprintf(what, sizeof what, "manifest %s", cl.ref.text);
    if ((rc = parse_manifest(m.p, m.len, what, &config, &layer, diag)) ||
        (rc = judge_config(&cl, cache, &config, &res, diag)) ||
        (rc = fetch_layer(&cl, cache, &layer, &res, diag)))
        goto out;
    if (dest && (rc = oci_copy_file(res.path, dest, diag)))
        goto out;
    res.manifest_size = m.len;
    rc = oci_result_out(&res, config.digest, config.size, layer.digest, layer.size, out, diag);
out:
    free(m.p);
    oci_client_close(&cl);
    return rc;
}
