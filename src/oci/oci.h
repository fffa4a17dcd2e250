/* oci.h - internal: the registry client behind snapbox_oci.h.
 *   ref.c     references (host[:port]/repo[:tag|@digest])
 *   client.c  one libcurl session per push or pull: requests, retries, status
 *   auth.c    credentials and the WWW-Authenticate Basic / Bearer flow
 *   blob.c    SHA-256 digests and the content-addressed cache
 *   config.c  the artifact's config blob <-> the snapshot's facts
 *   push.c, pull.c  the two operations */
#ifndef SBX_OCI_H
#define SBX_OCI_H

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "internal.h"
#include "snapbox_oci.h"
#include "snapshot/snapshot.h"

#define OCI_MANIFEST_TYPE "application/vnd.oci.image.manifest.v1+json"
#define OCI_HOST_MAX 256
#define OCI_REPO_MAX 256
#define OCI_TAG_MAX 128
#define OCI_URL_MAX 4096
#define OCI_LABEL_MAX 1200 /* room for a reference and a digest in messages */

/* ---- ref.c ---- */
struct oci_ref {
    char host[OCI_HOST_MAX]; /* host[:port] as written */
    char repo[OCI_REPO_MAX];
    char tag[OCI_TAG_MAX + 1];         /* "" when pinned by digest only */
    char digest[SBX_OCI_DIGEST_MAX];   /* "" unless @sha256:... */
    char text[OCI_HOST_MAX + OCI_REPO_MAX + OCI_TAG_MAX + SBX_OCI_DIGEST_MAX + 4];
    bool loopback;                     /* localhost, 127.0.0.0/8 or [::1] */
};
int oci_ref_parse(const char *text, struct oci_ref *r, struct sbx_diag *diag);
/* host[:port] is localhost, in 127.0.0.0/8 or [::1]. */
bool oci_host_loopback(const char *host);
/* "sha256:" and 64 lowercase hex digits. */
bool oci_digest_valid(const char *d);

/* ---- client.c ---- */
struct oci_buf {
    uint8_t *p;
    size_t len, cap, max; /* max: the most the reply may hold */
    bool over;
};

/* A download into a file, hashed as it arrives, cut off past max bytes. */
struct oci_sink {
    int fd;
    EVP_MD_CTX *md;
    uint64_t written, max;
    bool over;
    int err; /* errno of a failed write */
};

struct oci_client {
    struct sbx_oci_opts o; /* defaults filled */
    struct oci_ref ref;
    CURL *curl;
    bool curl_global;             /* holds a curl_global_init reference */
    char base[OCI_HOST_MAX + 16]; /* "https://host[:port]" */
    char *authz;                  /* "Authorization: ..." once a challenge was met */
    char user[256], pass[256];
    const char *cred_source;      /* where user/pass came from; NULL: none */
    bool push;                    /* scope: pull,push */
    char errbuf[CURL_ERROR_SIZE];
    CURLcode last_cc;
    unsigned replies;             /* HTTP replies so far in this session */
};

struct oci_req {
    const char *method;       /* GET HEAD POST PUT PATCH */
    const char *url;          /* "/v2/..." on the registry, or absolute */
    const char *accept, *content_type, *content_range;
    const uint8_t *body;      /* bytes to send, or NULL ... */
    int body_fd;              /* ... and this file's bytes from body_off (-1: none) */
    uint64_t body_off, body_len;
    uint64_t max_body;        /* cap of a reply kept in memory */
    struct oci_sink *sink;    /* or the reply goes here */
    const char *what;         /* for messages: "manifest of HOST/REPO:TAG" */
    const char *progress;     /* name given to the progress callback, or NULL */
    uint64_t progress_total;
    bool no_challenge;        /* a 401 is the answer (the token service itself) */
    const char *authz;        /* "Authorization: ..." for this request (the token service) */
};

struct oci_resp {
    long status;
    struct oci_buf body;
    char location[OCI_URL_MAX], digest[SBX_OCI_DIGEST_MAX], www_auth[1024];
    uint64_t sent;            /* request body bytes sent */
};

int oci_client_open(struct oci_client *cl, const char *ref, const struct sbx_oci_opts *opts,
                    bool push, struct sbx_diag *diag);
void oci_client_close(struct oci_client *cl);
/* One request, with the auth challenge answered and 429/5xx retried; a
 * transport failure is SBX_E_UNREACHABLE or SBX_E_NET. resp->body must be
 * freed (oci_resp_free) whatever the result. */
int oci_request(struct oci_client *cl, const struct oci_req *req, struct oci_resp *resp,
                struct sbx_diag *diag);
void oci_resp_free(struct oci_resp *resp);
/* An unexpected status as an error: 401/403 SBX_E_AUTH, 404 SBX_E_NOT_FOUND,
 * else SBX_E_REGISTRY, with the registry's own error text. */
int oci_status_fail(const struct oci_client *cl, const struct oci_req *req,
                    const struct oci_resp *resp, struct sbx_diag *diag);

/* ---- auth.c ---- */
/* Fill cl->user/pass from opts, the environment or Docker's config.json. */
int oci_auth_credentials(struct oci_client *cl, struct sbx_diag *diag);
/* A WWW-Authenticate challenge: scheme param="value", param=token, ...
 * (RFC 7235); the parameters snapbox uses, truncated to their fields. */
struct oci_challenge {
    char scheme[16], realm[1024], service[256], scope[512];
};
bool oci_challenge_parse(const char *s, struct oci_challenge *ch);
/* Answer a 401's WWW-Authenticate challenge: set cl->authz. */
int oci_auth_answer(struct oci_client *cl, const char *challenge, const char *what,
                    struct sbx_diag *diag);

/* ---- blob.c ---- */
/* sha256:HEX of len bytes. */
int oci_digest_mem(const void *p, size_t len, char out[SBX_OCI_DIGEST_MAX], struct sbx_diag *diag);
/* sha256:HEX of a whole file, and its size. */
int oci_digest_fd(int fd, const char *path, char out[SBX_OCI_DIGEST_MAX], uint64_t *size,
                  struct sbx_diag *diag);
/* The cache directory (opts, $SNAPBOX_CACHE, XDG), created if missing. */
int oci_cache_dir(const struct sbx_oci_opts *o, char *dir, size_t n, struct sbx_diag *diag);
/* DIR/blobs/sha256/HEX */
int oci_cache_path(const char *dir, const char *digest, char *path, size_t n,
                   struct sbx_diag *diag);
/* Make sure the blob (digest, size) is in the cache: 1 when it was there
 * already, 0 after a verified download, else an error and no entry. */
int oci_blob_fetch(struct oci_client *cl, const char *cache, const char *digest, uint64_t size,
                   const char *what, char *path, size_t n, struct sbx_diag *diag);
/* Put bytes into the cache under their digest (verified manifests). */
int oci_cache_put(const char *cache, const char *digest, const void *p, size_t len,
                  struct sbx_diag *diag);
/* Copy the file at src to dst atomically. */
int oci_copy_file(const char *src, const char *dst, struct sbx_diag *diag);

/* ---- config.c ---- */
/* The config blob of an opened snapshot: compact JSON, keys sorted. */
int oci_config_make(const struct sbx_snapshot *snap, char **out, size_t *len,
                    struct sbx_diag *diag);
/* The facts a config claims; SBX_E_REGISTRY naming what when it is malformed. */
int oci_config_facts(const uint8_t *p, size_t len, const char *what, struct sbx_snap_facts *f,
                     struct sbx_diag *diag);

/* client.c: fill res's config and layer descriptors, copy it to out (if any). */
int oci_result_out(struct sbx_oci_result *res, const char *config_digest, uint64_t config_size,
                   const char *layer_digest, uint64_t layer_size, struct sbx_oci_result *out,
                   struct sbx_diag *diag);
/* Options with the defaults filled. */
int oci_opts(const struct sbx_oci_opts *in, struct sbx_oci_opts *o, struct sbx_diag *diag);

#endif
