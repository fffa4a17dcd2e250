/* client.c - one libcurl session against one registry: requests with the
 * auth challenge answered, bounded retries with backoff on 429 and 5xx,
 * replies bounded before they are kept, transport failures classified. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "oci.h"

int oci_opts(const struct sbx_oci_opts *in, struct sbx_oci_opts *o, struct sbx_diag *diag)
{
    int rc = sbx_opts_in(o, sizeof *o, in, "sbx_oci_opts", diag);
    if (rc)
        return rc;
    if (!o->timeout_ms)
        o->timeout_ms = SBX_OCI_DEFAULT_TIMEOUT_MS;
    if (!o->retries)
        o->retries = SBX_OCI_DEFAULT_RETRIES;
    if (!o->max_file_size)
        o->max_file_size = SBX_SNAP_DEFAULT_MAX_FILE;
    return 0;
}

int oci_result_out(struct sbx_oci_result *res, const char *config_digest, uint64_t config_size,
                   const char *layer_digest, uint64_t layer_size, struct sbx_oci_result *out,
                   struct sbx_diag *diag)
{
    snprintf(res->config_digest, sizeof res->config_digest, "%s", config_digest);
    snprintf(res->layer_digest, sizeof res->layer_digest, "%s", layer_digest);
    res->config_size = config_size;
    res->layer_size = layer_size;
    return out ? sbx_opts_out(out, res, sizeof *res, "sbx_oci_result", diag) : 0;
}

int oci_client_open(struct oci_client *cl, const char *ref, const struct sbx_oci_opts *opts,
                    bool push, struct sbx_diag *diag)
{
    memset(cl, 0, sizeof *cl);
    int rc = oci_opts(opts, &cl->o, diag);
    if (rc || (rc = oci_ref_parse(ref, &cl->ref, diag)))
        return rc;
    cl->push = push;
    /* curl_global_init is not thread-safe before 7.84; Debian's is newer,
     * and the call is reference-counted. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return sbx_fail(diag, SBX_E_NOMEM, "%s: cannot start libcurl", cl->ref.text);
    cl->curl_global = true;
    if (!(cl->curl = curl_easy_init()))
        return sbx_fail(diag, SBX_E_NOMEM, "%s: cannot start libcurl", cl->ref.text);
    snprintf(cl->base, sizeof cl->base, "https://%s", cl->ref.host);
    return oci_auth_credentials(cl, diag);
}

void oci_client_close(struct oci_client *cl)
{
    if (cl->curl)
        curl_easy_cleanup(cl->curl);
    if (cl->curl_global)
        curl_global_cleanup();
    cl->curl_global = false;
    if (cl->authz)
        explicit_bzero(cl->authz, strlen(cl->authz));
    free(cl->authz);
    explicit_bzero(cl->pass, sizeof cl->pass);
    cl->curl = NULL;
    cl->authz = NULL;
}

void oci_resp_free(struct oci_resp *resp)
{
    free(resp->body.p);
    resp->body = (struct oci_buf){ 0 };
}

/* ---- libcurl callbacks ---- */
struct xfer {
    struct oci_client *cl;
    const struct oci_req *req;
    struct oci_resp *resp;
    uint64_t sent;
};

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    struct xfer *x = ctx;
    size_t len = size * n;
    struct oci_sink *sk = x->req->sink;
    long status = 0;
    curl_easy_getinfo(x->cl->curl, CURLINFO_RESPONSE_CODE, &status);
    if (sk && status >= 200 && status < 300) { /* an error reply goes to memory, for its text */
        if (sk->written + len > sk->max) {
            sk->over = true;
            return 0;
        }
        if (sbx_write_all(sk->fd, data, len) < 0) {
            sk->err = errno;
            return 0;
        }
        EVP_DigestUpdate(sk->md, data, len);
        sk->written += len;
        return len;
    }
    struct oci_buf *b = &x->resp->body;
    if (b->len + len > b->max) {
        b->over = true;
        return 0;
    }
    if (b->len + len + 1 > b->cap) {
        size_t cap = (b->len + len + 1) * 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = '\0';
    return len;
}

/* Header value into dst (trimmed, truncated to its size). */
static void take_header(const char *line, size_t len, const char *name, char *dst, size_t cap)
{
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(line, name, nl) || line[nl] != ':')
        return;
    const char *v = line + nl + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    snprintf(dst, cap, "%.*s", (int)(end - v), v);
}

static size_t on_header(char *line, size_t size, size_t n, void *ctx)
{
    struct xfer *x = ctx;
    size_t len = size * n;
    struct oci_resp *r = x->resp;
    if (len > 5 && !strncmp(line, "HTTP/", 5)) { /* a new reply (after a redirect) */
        r->location[0] = r->digest[0] = r->www_auth[0] = '\0';
        return len;
    }
    take_header(line, len, "Location", r->location, sizeof r->location);
    take_header(line, len, "Docker-Content-Digest", r->digest, sizeof r->digest);
    take_header(line, len, "WWW-Authenticate", r->www_auth, sizeof r->www_auth);
    return len;
}

static size_t on_read(char *dst, size_t size, size_t n, void *ctx)
{
    struct xfer *x = ctx;
    const struct oci_req *q = x->req;
    uint64_t left = q->body_len - x->sent;
    size_t len = size * n < left ? size * n : (size_t)left;
    if (!len)
        return 0;
    if (q->body) {
        memcpy(dst, q->body + x->sent, len);
    } else {
        ssize_t got;
        do
            got = pread(q->body_fd, dst, len, (off_t)(q->body_off + x->sent));
        while (got < 0 && errno == EINTR);
        if (got <= 0)
            return CURL_READFUNC_ABORT;
        len = (size_t)got;
    }
    x->sent += len;
    return len;
}

static int on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct xfer *x = ctx;
    const struct sbx_oci_opts *o = &x->cl->o;
    bool up = x->req->body_len > 0;
    curl_off_t now = up ? ulnow : dlnow, total = up ? ultotal : dltotal;
    uint64_t t = x->req->progress_total ? x->req->progress_total : (uint64_t)total;
    o->progress(o->progress_ctx, x->req->progress, (uint64_t)now, t);
    return 0;
}

/* ---- one attempt ---- */
static void url_of(const struct oci_client *cl, const char *url, char *out, size_t n)
{
    if (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8))
        snprintf(out, n, "%s", url);
    else
        snprintf(out, n, "%s%s", cl->base, url);
}

static void set_options(struct oci_client *cl, struct xfer *x, char *url,
                        struct curl_slist *hdrs)
{
    CURL *c = cl->curl;
    const struct oci_req *q = x->req;
    const struct sbx_oci_opts *o = &cl->o;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cl->errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)o->timeout_ms);
    /* a stall, not a slow transfer, is a timeout: below 1 byte/s for that long */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)(o->timeout_ms + 999) / 1000);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "snapbox/" SBX_VERSION_STRING);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    if (o->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
    if (o->insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (!strcmp(q->method, "GET")) {
        /* blobs may live elsewhere (a storage service); libcurl drops our
         * Authorization header when the host changes */
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    } else if (!strcmp(q->method, "HEAD")) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(q->method, "POST")) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, x);
    } else { /* PUT, PATCH */
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)q->body_len);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, x);
        if (o->max_send_rate)
            curl_easy_setopt(c, CURLOPT_MAX_SEND_SPEED_LARGE, (curl_off_t)o->max_send_rate);
    }
    if (q->progress && o->progress) {
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
    }
}

/* Append "name: value" to *h; false (and *h freed) when out of memory. */
static bool add_header(struct curl_slist **h, const char *name, const char *value)
{
    char line[1200];
    snprintf(line, sizeof line, "%s: %s", name, value);
    struct curl_slist *t = curl_slist_append(*h, line);
    if (!t) {
        curl_slist_free_all(*h);
        *h = NULL;
        return false;
    }
    *h = t;
    return true;
}

/* Whether url is on the registry itself: the only place its authorisation goes
 * (a Location may name another host, a storage service). */
static bool on_registry(const struct oci_client *cl, const char *url)
{
    size_t n = strlen(cl->base);
    return !strncmp(url, cl->base, n) && (url[n] == '/' || url[n] == '\0');
}

static struct curl_slist *headers_of(const struct oci_client *cl, const struct oci_req *q,
                                     const char *url)
{
    const char *authz = q->authz ? q->authz : on_registry(cl, url) ? cl->authz : NULL;
    /* no "Expect: 100-continue" round trip before uploads */
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    if (h && q->accept && !add_header(&h, "Accept", q->accept))
        return NULL;
    if (h && q->content_type && !add_header(&h, "Content-Type", q->content_type))
        return NULL;
    if (h && q->content_range && !add_header(&h, "Content-Range", q->content_range))
        return NULL;
    if (h && authz) { /* "Authorization: ..." as a whole: tokens may be long */
        struct curl_slist *t = curl_slist_append(h, authz);
        if (!t)
            curl_slist_free_all(h);
        h = t;
    }
    return h;
}

static void sink_reset(struct oci_sink *sk)
{
    sk->written = 0;
    sk->over = false;
    sk->err = 0;
    if (ftruncate(sk->fd, 0) == 0)
        lseek(sk->fd, 0, SEEK_SET);
    EVP_DigestInit_ex(sk->md, EVP_sha256(), NULL);
}

/* A failed transfer: could we not reach the registry, or did it break off? */
static int transport_fail(struct oci_client *cl, const struct oci_req *q, CURLcode cc,
                          const char *url, const struct oci_resp *resp, struct sbx_diag *diag)
{
    const char *why = cl->errbuf[0] ? cl->errbuf : curl_easy_strerror(cc);
    struct oci_sink *sk = q->sink;
    if (sk && sk->over)
        return sbx_fail(diag, SBX_E_DIGEST, "%s: the registry sent more than the %llu bytes "
                        "the manifest gives its size", q->what, (unsigned long long)sk->max);
    if (sk && sk->err)
        return sbx_fail(diag, SBX_E_IO, "%s: writing the download failed: %s", q->what,
                        strerror(sk->err));
    if (resp->body.over)
        return sbx_fail(diag, SBX_E_LIMIT, "%s: the registry's reply is over the limit of "
                        "%llu bytes", q->what, (unsigned long long)q->max_body);
    long connected = 0;
    curl_easy_getinfo(cl->curl, CURLINFO_CONNECT_TIME_T, &connected);
    switch (cc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
        return sbx_fail(diag, SBX_E_UNREACHABLE, "%s: %s: TLS verification failed: %s (give the "
                        "registry's CA with --ca-file)", q->what, url, why);
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
        if (strncmp(url, cl->base, strlen(cl->base))) /* another service: the token realm */
            return sbx_fail(diag, SBX_E_UNREACHABLE, "%s: cannot reach %s: %s", q->what, url,
                            why);
        /* gone after it answered: the operation broke off, it did not fail to start */
        if (cl->replies)
            return sbx_fail(diag, SBX_E_NET, "%s: lost the registry at %s after %u replies, in "
                            "the middle of the operation: %s", q->what, cl->base, cl->replies,
                            why);
        return sbx_fail(diag, SBX_E_UNREACHABLE, "%s: cannot reach the registry at %s: %s",
                        q->what, cl->base, why);
    default:
        if (!connected && !cl->replies && cc == CURLE_OPERATION_TIMEDOUT)
            return sbx_fail(diag, SBX_E_UNREACHABLE, "%s: cannot reach the registry at %s: %s",
                            q->what, cl->base, why);
        return sbx_fail(diag, SBX_E_NET, "%s %s: the transfer broke off%s: %s", q->method, url,
                        resp->sent ? " while sending" : "", why);
    }
}

static int attempt(struct oci_client *cl, const struct oci_req *q, struct oci_resp *resp,
                   struct sbx_diag *diag)
{
    char *url = malloc(OCI_URL_MAX);
    struct curl_slist *hdrs = NULL;
    struct xfer x = { .cl = cl, .req = q, .resp = resp };
    int rc = SBX_E_NOMEM;
    oci_resp_free(resp);
    *resp = (struct oci_resp){ .body.max = q->max_body };
    if (url) {
        url_of(cl, q->url, url, OCI_URL_MAX);
        hdrs = headers_of(cl, q, url);
    }
    if (!url || !hdrs) {
        sbx_fail(diag, rc, "%s: out of memory", q->what);
        goto out;
    }
    if (q->sink)
        sink_reset(q->sink);
    cl->errbuf[0] = '\0';
    set_options(cl, &x, url, hdrs);
    CURLcode cc = cl->last_cc = curl_easy_perform(cl->curl);
    resp->sent = x.sent;
    if (cc != CURLE_OK) {
        rc = transport_fail(cl, q, cc, url, resp, diag);
        goto out;
    }
    curl_easy_getinfo(cl->curl, CURLINFO_RESPONSE_CODE, &resp->status);
    cl->replies++;
    rc = 0;
out:
    curl_slist_free_all(hdrs);
    free(url);
    return rc;
}

/* Loopback registries (and --insecure) may speak plain HTTP: found by the
 * first request, whose TLS handshake then fails, as Docker's client does
 * (or cannot start: a machine without a CA bundle, and no --ca-file). */
static bool fall_back_to_http(struct oci_client *cl, int rc)
{
    bool no_tls = cl->last_cc == CURLE_SSL_CONNECT_ERROR ||
                  (cl->last_cc == CURLE_SSL_CACERT_BADFILE && !cl->o.ca_file);
    if (rc != SBX_E_UNREACHABLE || !no_tls || strncmp(cl->base, "https://", 8) ||
        !(cl->ref.loopback || cl->o.insecure))
        return false;
    snprintf(cl->base, sizeof cl->base, "http://%s", cl->ref.host);
    return true;
}

static void backoff(unsigned try_no)
{
    unsigned ms = 200u << (try_no < 5 ? try_no : 5);
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int oci_request(struct oci_client *cl, const struct oci_req *req, struct oci_resp *resp,
                struct sbx_diag *diag)
{
    bool answered = false, probed = !strncmp(cl->base, "http://", 7);
    for (unsigned try_no = 0;;) {
        int rc = attempt(cl, req, resp, diag);
        if (rc && !probed && fall_back_to_http(cl, rc)) {
            probed = true;
            continue;
        }
        if (rc)
            return rc;
        if (resp->status == 401 && !answered && !req->no_challenge && resp->www_auth[0]) {
            answered = true;
            if ((rc = oci_auth_answer(cl, resp->www_auth, req->what, diag)))
                return rc;
            continue;
        }
        if ((resp->status == 429 || resp->status >= 500) && try_no < cl->o.retries) {
            backoff(try_no++);
            continue;
        }
        if (resp->status == 429 || resp->status >= 500)
            return sbx_fail(diag, SBX_E_NET, "%s: %s %s: the registry answered HTTP %ld, %u "
                            "times", req->what, req->method, req->url, resp->status,
                            try_no + 1);
        return 0;
    }
}

/* The first message of the registry's {"errors": [{"code", "message"}]}. */
static void registry_says(const struct oci_resp *resp, char *out, size_t n)
{
    out[0] = '\0';
    if (!resp->body.p)
        return;
    json_t *root = json_loadb((const char *)resp->body.p, resp->body.len, 0, NULL);
    json_t *e = json_array_get(json_object_get(root, "errors"), 0);
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (code || msg)
        snprintf(out, n, " (%.40s: %.200s)", code ? code : "error", msg ? msg : "");
    /* control characters of a hostile reply stay out of the message */
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    json_decref(root);
}

int oci_status_fail(const struct oci_client *cl, const struct oci_req *req,
                    const struct oci_resp *resp, struct sbx_diag *diag)
{
    char says[300];
    registry_says(resp, says, sizeof says);
    long st = resp->status;
    if (st == 401 || st == 403)
        return sbx_fail(diag, SBX_E_AUTH, "%s: the registry %s refused access (HTTP %ld)%s%s",
                        req->what, cl->ref.host, st, says,
                        cl->cred_source ? "" : ": no credentials given (SNAPBOX_REGISTRY_USER "
                                               "and SNAPBOX_REGISTRY_PASSWORD, or docker login)");
    if (st == 404)
        return sbx_fail(diag, SBX_E_NOT_FOUND, "%s: not found in the registry %s (HTTP 404)%s",
                        req->what, cl->ref.host, says);
    return sbx_fail(diag, SBX_E_REGISTRY, "%s: %s %s: unexpected HTTP %ld from the registry%s",
                    req->what, req->method, req->url, st, says);
}
