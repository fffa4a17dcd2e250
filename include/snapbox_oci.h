/*
 * snapbox_oci.h - snapshots as OCI artifacts in a registry: push, pull and a
 * verified local cache (docs/oci.md describes the artifact and the cache).
 *
 * A reference is host[:port]/repo[:tag] or host[:port]/repo@sha256:HEX
 * (the tag defaults to "latest"), optionally prefixed "oci://". The
 * conventions are snapbox.h's: sized option structs (SBX_OPTS), a negative
 * enum sbx_error and a message in struct sbx_diag on failure, no printing.
 * Registry replies are untrusted input: every size is bounded before it is
 * read, every blob is checked against its digest while it is downloaded.
 * Links with libcurl, OpenSSL's libcrypto and jansson (snapbox.pc says so).
 */
#ifndef SNAPBOX_OCI_H
#define SNAPBOX_OCI_H

#include "snapbox.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Media types of a snapbox artifact. */
#define SBX_OCI_ARTIFACT_TYPE "application/vnd.snapbox.snapshot.v1"
#define SBX_OCI_CONFIG_TYPE "application/vnd.snapbox.snapshot.config.v1+json"
#define SBX_OCI_LAYER_TYPE "application/vnd.snapbox.snapshot.v1.file"

/* Caps on what a registry may send before snapbox reads it. */
#define SBX_OCI_MAX_MANIFEST (UINT64_C(1) << 20)
#define SBX_OCI_MAX_CONFIG (UINT64_C(1) << 20)
#define SBX_OCI_DEFAULT_TIMEOUT_MS 30000u /* connecting, and the longest stall of a transfer */
#define SBX_OCI_DEFAULT_RETRIES 4u        /* extra tries after a 429 or 5xx */
#define SBX_OCI_DIGEST_MAX 72             /* "sha256:" + 64 hex digits + NUL, rounded up */
#define SBX_OCI_PATH_MAX 2048 /* bytes of sbx_oci_result.path, NUL included */

/* Called during transfers (from the calling thread): what is "config",
 * "layer" or "manifest"; total is 0 when unknown. */
typedef void (*sbx_oci_progress_fn)(void *ctx, const char *what, uint64_t done, uint64_t total);

struct sbx_oci_opts {
    size_t sz;              /* sizeof(struct sbx_oci_opts): use SBX_OPTS */
    /* The cache of pulled blobs; NULL: $SNAPBOX_CACHE, else
     * $XDG_CACHE_HOME/snapbox, else $HOME/.cache/snapbox. */
    const char *cache_dir;
    const char *ca_file;    /* PEM CAs to trust instead of the system's; NULL: the system's */
    /* Allow plain HTTP and skip TLS verification for any host (loopback
     * hosts may always fall back to plain HTTP). */
    bool insecure;
    /* Credentials; NULL: $SNAPBOX_REGISTRY_USER and $SNAPBOX_REGISTRY_PASSWORD,
     * else the host's "auths" entry of $DOCKER_CONFIG/config.json or
     * ~/.docker/config.json. */
    const char *username, *password;
    /* Pull: the policy the snapshot's recorded guest must pass (as for
     * sbx_snapshot_check_compat), judged from the config before the layer
     * is downloaded. */
    enum sbx_version_policy policy;
    bool require_note;
    bool no_cpu_check;      /* pull: skip the CPU vendor/feature check against /dev/kvm */
    uint32_t timeout_ms;    /* 0: SBX_OCI_DEFAULT_TIMEOUT_MS */
    uint32_t retries;       /* 0: SBX_OCI_DEFAULT_RETRIES */
    uint64_t chunk_size;    /* push: upload in PATCH chunks of this size; 0: one PUT */
    uint64_t max_send_rate; /* push: bytes per second at most; 0: no limit */
    uint64_t max_file_size; /* largest layer accepted; 0: SBX_SNAP_DEFAULT_MAX_FILE */
    sbx_oci_progress_fn progress;
    void *progress_ctx;
    sbx_log_fn log;         /* warnings (e.g. the CPU check skipped); may be NULL */
    void *log_ctx;
};

/* What a push or pull did. Set sz (SBX_OPTS) before the call. */
struct sbx_oci_result {
    size_t sz;                                /* sizeof(struct sbx_oci_result): use SBX_OPTS */
    char manifest_digest[SBX_OCI_DIGEST_MAX]; /* "sha256:..." */
    char config_digest[SBX_OCI_DIGEST_MAX];
    char layer_digest[SBX_OCI_DIGEST_MAX];
    uint64_t manifest_size, config_size, layer_size;
    uint32_t blobs_uploaded, blobs_skipped;   /* push: skipped = the registry had them */
    uint32_t blobs_downloaded, blobs_cached;  /* pull: cached = taken from the cache */
    uint64_t bytes_uploaded, bytes_downloaded; /* blob bytes moved */
    char path[SBX_OCI_PATH_MAX];              /* pull: the layer's file in the cache */
};

/* Push the snapshot file at path (checked completely first, as
 * sbx_snapshot_open does) to ref: its config and layer blobs (skipped when
 * the registry has them), then the manifest under ref's tag. */
SBX_API int sbx_oci_push(const char *path, const char *ref, const struct sbx_oci_opts *opts,
                         struct sbx_oci_result *out, struct sbx_diag *diag);

/* Pull ref into the cache: the manifest, then the config, judged (format,
 * layout ABI, guest version under opts' policy, CPU) before the layer is
 * fetched; blobs already in the cache are not downloaded again. Each blob
 * is checked against its digest while downloading and enters the cache
 * only when it matches. With dest, the snapshot is also written there
 * atomically. On failure dest is untouched and no unverified blob stays.
 * out->path names the cached file. */
SBX_API int sbx_oci_pull(const char *ref, const char *dest, const struct sbx_oci_opts *opts,
                         struct sbx_oci_result *out, struct sbx_diag *diag);

/* Whether text is an OCI reference for snapbox ("oci://..."). */
SBX_API bool sbx_oci_is_ref(const char *text);

#ifdef __cplusplus
}
#endif

#endif
