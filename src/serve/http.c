/* http.c - the HTTP side of `snapbox serve` on libmicrohttpd: routing, the
 * bearer token, request bodies, statuses, and the drain on SIGTERM. */
#include <errno.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "serve/serve.h"

/* Connections open at once (idle keep-alive ones included), and how long
 * one may stay silent: a client that sends half a request and waits holds
 * a connection for this long at most, and delays a drain by as much. */
#define SERVE_MAX_CONNECTIONS 1024u
#define SERVE_CONN_TIMEOUT_S 30u

static const char *const kind_names[KIND_COUNT_] = {
    [KIND_BAD_JSON] = "bad_json", [KIND_BAD_ARGS] = "bad_args", [KIND_NOT_FOUND] = "not_found",
    [KIND_METHOD] = "method_not_allowed", [KIND_TOO_LARGE] = "too_large",
    [KIND_UNAUTHORIZED] = "unauthorized", [KIND_QUEUE_FULL] = "queue_full",
    [KIND_SHUTTING_DOWN] = "shutting_down", [KIND_GUEST_ABORT] = "guest_abort",
    [KIND_GUEST_FAULT] = "guest_fault", [KIND_TIMEOUT] = "timeout", [KIND_INTERNAL] = "internal",
};

const char *serve_kind_name(enum serve_kind k)
{
    return (unsigned)k < KIND_COUNT_ ? kind_names[k] : "?";
}

/* The one table of a call's library error -> HTTP status (docs/serve.md). */
unsigned serve_status_of(int err, enum serve_kind *kind)
{
    switch (err) {
    case SBX_E_ARGS: case SBX_E_INVAL: *kind = KIND_BAD_ARGS; return 400;
    case SBX_E_NO_FUNC: *kind = KIND_NOT_FOUND; return 404;
    case SBX_E_LIMIT: *kind = KIND_TOO_LARGE; return 413;
    case SBX_E_GUEST_ABORT: *kind = KIND_GUEST_ABORT; return 500;
    case SBX_E_GUEST_FAULT: case SBX_E_GUEST_ABI: case SBX_E_POISONED: case SBX_E_HOST_FN:
        *kind = KIND_GUEST_FAULT; return 502;
    case SBX_E_TIMEOUT: *kind = KIND_TIMEOUT; return 504;
    default: *kind = KIND_INTERNAL; return 503;
    }
}

/* cj_error's object (code, message, abort_code, fault) with the status
 * instead of the CLI's exit code; code names a non-library error. */
char *serve_error_json(unsigned status, const char *code, const struct sbx_diag *diag)
{
    json_t *root = cj_error(diag);
    json_t *e = json_object_get(root, "error");
    char *text = NULL;
    if (e && !json_object_del(e, "exit") &&
        !json_object_set_new(e, "status", json_integer(status)) &&
        (!code || !json_object_set_new(e, "code", json_string(code))))
        text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

/* Queue body (malloc'd; ours to free) with status; extra headers in pairs. */
static enum MHD_Result respond(struct serve *s, struct MHD_Connection *conn, unsigned status,
                               char *body, const char *type, const char *h1, const char *v1)
{
    static const char oom[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\","
                              "\"status\":503}}";
    struct MHD_Response *r = body
        ? MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE)
        : MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
    if (!body)
        status = 503;
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type ? type : "application/json");
    if (h1)
        MHD_add_response_header(r, h1, v1);
    enum MHD_Result ok = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    serve_count_response(s, status);
    return ok;
}

static enum MHD_Result refuse(struct serve *s, struct MHD_Connection *conn, unsigned status,
                              enum serve_kind kind, const char *h1, const char *v1,
                              const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static enum MHD_Result refuse(struct serve *s, struct MHD_Connection *conn, unsigned status,
                              enum serve_kind kind, const char *h1, const char *v1,
                              const char *fmt, ...)
{
    struct sbx_diag diag = { .code = SBX_E_INVAL };
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(diag.msg, sizeof diag.msg, fmt, ap);
    va_end(ap);
    serve_count_error(s, kind);
    return respond(s, conn, status, serve_error_json(status, serve_kind_name(kind), &diag), NULL,
                   h1, v1);
}

/* The whole expected token is always compared, so the time taken says
 * nothing about how much of a guess was right. */
static bool token_ok(const struct serve *s, struct MHD_Connection *conn)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7))
        return false;
    const char *got = h + 7;
    size_t n = strlen(got);
    unsigned char diff = n != s->token_len;
    for (size_t i = 0; i < s->token_len; i++)
        diff |= (unsigned char)(s->token[i] ^ (n ? got[i % n] : 0));
    return diff == 0;
}

static const struct serve_target *find_target(const struct serve *s, const char *name, size_t len)
{
    for (size_t i = 0; i < s->ntargets; i++)
        if (strlen(s->targets[i].name) == len && !memcmp(s->targets[i].name, name, len))
            return &s->targets[i];
    return NULL;
}

static enum MHD_Result get_page(struct serve *s, struct MHD_Connection *conn, const char *page,
                                const char *type)
{
    char *body = page ? strdup(page) : NULL;
    return respond(s, conn, 200, body, type, NULL, NULL);
}

/* POST /v1/NAME/FUNC, before the body: the snapshot, the function and the
 * announced length are checked now, so a bad request costs no upload. */
static enum MHD_Result begin_call(struct serve *s, struct serve_job *j, struct MHD_Connection *conn,
                                  const char *name, size_t nlen, const char *func)
{
    j->t = (struct serve_target *)find_target(s, name, nlen);
    if (!j->t)
        return refuse(s, conn, 404, KIND_NOT_FOUND, NULL, NULL, "no snapshot named '%.*s'",
                      (int)nlen, name);
    j->fi.sz = sizeof j->fi;
    bool found = false;
    for (size_t i = 0; !found && sbx_snapshot_function(j->t->snap, i, &j->fi, NULL) == 0; i++)
        found = !strcmp(j->fi.name, func);
    if (!found)
        return refuse(s, conn, 404, KIND_NOT_FOUND, NULL, NULL, "snapshot '%s' has no function "
                      "'%s' (GET /v1/%s lists them)", j->t->name, func, j->t->name);
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > s->o.max_body)
        return refuse(s, conn, 413, KIND_TOO_LARGE, MHD_HTTP_HEADER_CONNECTION, "close",
                      "the body of %s bytes is over the limit of %llu (--max-body)", cl,
                      (unsigned long long)s->o.max_body);
    j->awaiting_body = true;
    return MHD_YES;
}

/* Routing of a request's first call: everything but a call's body. */
static enum MHD_Result route(struct serve *s, struct serve_job *j, struct MHD_Connection *conn,
                             const char *url, const char *method)
{
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (!strcmp(url, "/healthz") && get)
        return get_page(s, conn, "{\"status\":\"ok\"}", NULL);
    if (s->token && !token_ok(s, conn))
        return refuse(s, conn, 401, KIND_UNAUTHORIZED, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer",
                      "this server wants Authorization: Bearer TOKEN");
    if (!strcmp(url, "/metrics") && get)
        return respond(s, conn, 200, serve_metrics_text(s), "text/plain; version=0.0.4", NULL,
                       NULL);
    if ((!strcmp(url, "/v1") || !strcmp(url, "/v1/")) && get)
        return get_page(s, conn, s->index, NULL);
    if (strncmp(url, "/v1/", 4))
        return refuse(s, conn, 404, KIND_NOT_FOUND, NULL, NULL, "no such path: %s", url);
    const char *name = url + 4, *slash = strchr(name, '/');
    if (!slash) {
        const struct serve_target *t = find_target(s, name, strlen(name));
        if (!t)
            return refuse(s, conn, 404, KIND_NOT_FOUND, NULL, NULL, "no snapshot named '%s'", name);
        if (!get)
            return refuse(s, conn, 405, KIND_METHOD, MHD_HTTP_HEADER_ALLOW, "GET, HEAD",
                          "%s wants GET, not %s", url, method);
        return get_page(s, conn, t->listing, NULL);
    }
    if (strcmp(method, "POST"))
        return refuse(s, conn, 405, KIND_METHOD, MHD_HTTP_HEADER_ALLOW, "POST",
                      "%s wants POST, not %s", url, method);
    return begin_call(s, j, conn, name, (size_t)(slash - name), slash + 1);
}

static void suspend_job(struct serve_job *j)
{
    MHD_suspend_connection(j->conn);
}

void serve_job_finished(struct serve_job *j)
{
    j->done = true;
    MHD_resume_connection(j->conn); /* the last touch: the job is MHD's again */
}

/* The whole body is in: parse it and queue the call, or answer why not. */
static enum MHD_Result submit(struct serve *s, struct serve_job *j, struct MHD_Connection *conn)
{
    struct sbx_diag diag = { 0 };
    if (j->too_large)
        return refuse(s, conn, 413, KIND_TOO_LARGE, MHD_HTTP_HEADER_CONNECTION, "close",
                      "the body is over the limit of %llu bytes (--max-body)",
                      (unsigned long long)s->o.max_body);
    if (serve_args(j->body, j->len, &j->fi, j->v, j->owned, &j->doc, &diag)) {
        enum serve_kind kind = diag.code == SBX_E_INVAL ? KIND_BAD_JSON : KIND_BAD_ARGS;
        serve_count_error(s, kind);
        return respond(s, conn, 400, serve_error_json(400, serve_kind_name(kind), &diag), NULL,
                       NULL, NULL);
    }
    free(j->body);
    j->body = NULL;
    j->conn = conn;
    if (serve_enqueue(s, j, suspend_job)) {
        atomic_fetch_add(&j->t->requests, 1);
        return MHD_YES;
    }
    pthread_mutex_lock(&s->lock);
    bool stopping = s->stopping;
    pthread_mutex_unlock(&s->lock);
    if (stopping)
        return refuse(s, conn, 503, KIND_SHUTTING_DOWN, MHD_HTTP_HEADER_CONNECTION, "close",
                      "the server is shutting down");
    return refuse(s, conn, 503, KIND_QUEUE_FULL, MHD_HTTP_HEADER_RETRY_AFTER, "1",
                  "all %zu workers are busy and %zu calls wait already (--queue)", s->o.workers,
                  s->o.queue);
}

/* Keep at most max_body bytes; past that only remember it was too large. */
static void take_upload(struct serve *s, struct serve_job *j, const char *data, size_t n)
{
    if (j->too_large || n > s->o.max_body - j->len) {
        j->too_large = true;
        free(j->body);
        j->body = NULL;
        return;
    }
    char *b = realloc(j->body, j->len + n);
    if (!b) {
        j->too_large = true; /* refused like an oversized body: said in its message */
        return;
    }
    memcpy(b + j->len, data, n);
    j->body = b;
    j->len += n;
}

static enum MHD_Result first_call(struct serve *s, struct MHD_Connection *conn, const char *url,
                                  const char *method, void **req_cls)
{
    struct serve_job *j = calloc(1, sizeof *j);
    if (!j)
        return MHD_NO;
    j->t0 = cli_now_ms();
    *req_cls = j;
    pthread_mutex_lock(&s->lock);
    s->open_requests++;
    bool stopping = s->stopping;
    pthread_mutex_unlock(&s->lock);
    if (stopping)
        return refuse(s, conn, 503, KIND_SHUTTING_DOWN, MHD_HTTP_HEADER_CONNECTION, "close",
                      "the server is shutting down");
    return route(s, j, conn, url, method);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls)
{
    struct serve *s = cls;
    struct serve_job *j = *req_cls;
    (void)version;
    if (!j)
        return first_call(s, conn, url, method, req_cls);
    if (j->done) {
        char *resp = j->resp;
        j->resp = NULL;
        return respond(s, conn, j->status, resp, NULL, NULL, NULL);
    }
    /* answered already (an error before the body) or queued: nothing to read */
    if (!j->awaiting_body) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        take_upload(s, j, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    j->awaiting_body = false;
    return submit(s, j, conn);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct serve *s = cls;
    struct serve_job *j = *req_cls;
    (void)conn; (void)toe;
    if (!j)
        return;
    serve_args_free(j->owned);
    json_decref(j->doc);
    free(j->body);
    free(j->resp);
    free(j);
    *req_cls = NULL;
    pthread_mutex_lock(&s->lock);
    s->open_requests--;
    pthread_cond_broadcast(&s->idle_cv);
    pthread_mutex_unlock(&s->lock);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    fprintf(stderr, "snapbox serve: libmicrohttpd: %s\n", msg);
}

/* Until every request begun has been answered, or limit_ms passed. */
static bool drain(struct serve *s, double limit_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(limit_ms / 1000) + 1;
    pthread_mutex_lock(&s->lock);
    int rc = 0;
    while (s->open_requests && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&s->idle_cv, &s->lock, &until);
    bool drained = s->open_requests == 0;
    pthread_mutex_unlock(&s->lock);
    return drained;
}

/* The one line that says the server is ready, and on which port. */
static void announce(const struct serve *s, struct MHD_Daemon *d, const char *shown)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = info ? info->port : 0;
    const char *strategy = s->o.strategy == STRAT_NEW ? "new"
                           : s->o.strategy == STRAT_RESTORE ? "restore" : "reuse";
    if (s->cli->json)
        cj_emit(json_pack("{s:s, s:i, s:s, s:I}", "listening", shown, "port", (int)port,
                          "strategy", strategy, "workers", (json_int_t)s->o.workers), EXIT_OK_);
    else
        printf("snapbox serve: listening on %s (port %u), strategy %s, %zu workers\n", shown,
               port, strategy, s->o.workers);
    fflush(stdout);
}

int serve_http(struct serve *s, const struct sockaddr *addr, const char *shown,
               struct sbx_diag *diag)
{
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     (addr->sa_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
        MHD_OPTION_SOCK_ADDR, addr, MHD_OPTION_CONNECTION_LIMIT, SERVE_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, SERVE_CONN_TIMEOUT_S,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (!d)
        return sbx_fail(diag, SBX_E_IO, "cannot listen on %s (libmicrohttpd says why above)",
                        shown);
    announce(s, d, shown);
    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "snapbox serve: %s: no new connections; finishing the requests in flight\n",
            strsignal(sig));
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_mutex_unlock(&s->lock);
    MHD_socket fd = MHD_quiesce_daemon(d);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    /* each queued call ends by its deadline; a stalled upload by the timeout */
    double limit = (double)s->cfg.deadline_ms * (double)(s->o.queue / s->o.workers + 2) +
                   SERVE_CONN_TIMEOUT_S * 1000.0;
    bool drained = drain(s, limit);
    serve_workers_stop(s);
    MHD_stop_daemon(d);
    if (!drained)
        return sbx_fail(diag, SBX_E_TIMEOUT, "requests still open after %.0f ms of draining",
                        limit);
    fprintf(stderr, "snapbox serve: every request answered; exiting\n");
    return 0;
}
