/* cmd_serve.c - `snapbox serve`: its options, the listening address, the
 * token, and the order of start-up and shutdown (the server is src/serve/). */
#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "serve/serve.h"

#define SERVE_DEFAULT_LISTEN "127.0.0.1:8080"
#define SERVE_DEFAULT_POOL 4
#define SERVE_DEFAULT_WORKERS 4
#define SERVE_DEFAULT_QUEUE 64
#define SERVE_DEFAULT_MAX_BODY (1u << 20)
#define SERVE_MAX_THREADS 1024 /* --pool, --workers and --queue at most */
#define SERVE_MAX_TOKEN 4096

static int set_count(struct cli *c, const char *val, long *out, long min, const char *what)
{
    char *end;
    long v = strtol(val, &end, 10);
    if (end == val || *end || v < min || v > SERVE_MAX_THREADS)
        return cli_usage(c, "%s wants %ld..%d, not '%s'", what, min, SERVE_MAX_THREADS, val);
    *out = v;
    return 0;
}

static int set_pool(struct cli *c, const char *val)
{
    return set_count(c, val, &c->pool, 1, "--pool");
}

static int set_workers(struct cli *c, const char *val)
{
    return set_count(c, val, &c->workers, 1, "--workers");
}

static int set_queue(struct cli *c, const char *val)
{
    return set_count(c, val, &c->queue, 1, "--queue");
}

static int set_listen(struct cli *c, const char *val)
{
    c->listen = val;
    return 0;
}

static int set_listen_any(struct cli *c, const char *val)
{
    (void)val;
    c->listen_any = true;
    return 0;
}

static int set_token_file(struct cli *c, const char *val)
{
    c->token_file = val;
    return 0;
}

static int set_strategy(struct cli *c, const char *val)
{
    if (strcmp(val, "new") && strcmp(val, "restore") && strcmp(val, "reuse"))
        return cli_usage(c, "--strategy wants new, restore or reuse, not '%s'", val);
    c->strategy = val;
    return 0;
}

static int set_max_body(struct cli *c, const char *val)
{
    if (!cli_parse_size(val, &c->max_body) || c->max_body == 0 || c->max_body > (1u << 30))
        return cli_usage(c, "bad --max-body '%s' (bytes, 1 to 1G)", val);
    return 0;
}

/* HOST:PORT or [V6HOST]:PORT, numeric: no name lookup decides where we listen. */
static int parse_listen(const struct cli *c, const char *text, struct sockaddr_storage *ss)
{
    char host[256];
    const char *colon = strrchr(text, ':');
    size_t hlen = colon ? (size_t)(colon - text) : 0;
    if (!colon || hlen == 0 || hlen >= sizeof host || !colon[1])
        return cli_usage(c, "--listen wants HOST:PORT (e.g. 127.0.0.1:8080), not '%s'", text);
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    if (host[0] == '[' && host[hlen - 1] == ']') {
        memmove(host, host + 1, hlen - 2);
        host[hlen - 2] = '\0';
    }
    struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
                              .ai_socktype = SOCK_STREAM }, *ai = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc)
        return cli_usage(c, "--listen '%s': %s (a numeric address and port)", text,
                         gai_strerror(rc));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return 0;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) ||
           (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

/* The token: the file's first line, at least 16 printable characters. */
static int read_token(struct serve *s, const char *path, struct sbx_diag *diag)
{
    uint8_t *buf;
    size_t n;
    int rc = sbx_read_file(path, SERVE_MAX_TOKEN, &buf, &n, diag);
    if (rc)
        return rc;
    size_t len = 0;
    while (len < n && buf[len] != '\n' && buf[len] != '\r')
        len++;
    bool printable = len >= 16;
    for (size_t i = 0; i < len; i++)
        printable = printable && buf[i] > ' ' && buf[i] < 0x7f;
    if (!printable) {
        free(buf);
        return sbx_fail(diag, SBX_E_INVAL, "%s: the token must be one line of at least 16 "
                        "printable characters without spaces", path);
    }
    buf[len] = '\0';
    s->token = (char *)buf;
    s->token_len = len;
    return 0;
}

static void init_opts(const struct cli *c, struct serve_opts *o)
{
    *o = (struct serve_opts){
        .listen = c->listen ? c->listen : SERVE_DEFAULT_LISTEN,
        .listen_any = c->listen_any,
        .pool = (size_t)(c->pool ? c->pool : SERVE_DEFAULT_POOL),
        .workers = (size_t)(c->workers ? c->workers : SERVE_DEFAULT_WORKERS),
        .queue = (size_t)(c->queue ? c->queue : SERVE_DEFAULT_QUEUE),
        .max_body = c->max_body ? c->max_body : SERVE_DEFAULT_MAX_BODY,
        .token_file = c->token_file,
        .strategy = !c->strategy || !strcmp(c->strategy, "reuse") ? STRAT_REUSE
                    : !strcmp(c->strategy, "restore") ? STRAT_RESTORE : STRAT_NEW,
    };
}

/* Every thread made from here on (libmicrohttpd's, the pools', the
 * workers') blocks SIGTERM and SIGINT: only sigwait in serve_http takes them. */
static void block_stop_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int serve(struct cli *c)
{
    struct serve s = { .cli = c, .lock = PTHREAD_MUTEX_INITIALIZER,
                       .work_cv = PTHREAD_COND_INITIALIZER, .idle_cv = PTHREAD_COND_INITIALIZER,
                       .refill_cv = PTHREAD_COND_INITIALIZER };
    struct sbx_diag diag = { 0 };
    struct sockaddr_storage addr = { 0 };
    int rc;
    init_opts(c, &s.o);
    if ((rc = parse_listen(c, s.o.listen, &addr)))
        return rc;
    if (!s.o.listen_any && !is_loopback(&addr))
        return cli_usage(c, "--listen %s is not a loopback address: add --listen-any to serve "
                         "other machines (and see --token-file)", s.o.listen);
    block_stop_signals();
    json_object_seed(0); /* now, before any worker is confined by seccomp */
    s.fns = cli_config(c, &s.cfg, &diag);
    if (!s.cfg.deadline_ms)
        s.cfg.deadline_ms = SBX_DEFAULT_DEADLINE_MS;
    if (!s.fns || (s.o.token_file && read_token(&s, s.o.token_file, &diag)) ||
        serve_targets_open(&s, c->pos, c->npos, &diag) || serve_workers_start(&s, &diag) ||
        serve_http(&s, (const struct sockaddr *)&addr, s.o.listen, &diag))
        rc = cli_report(c, &diag);
    serve_workers_stop(&s);
    serve_targets_close(&s);
    sbx_host_fns_free(s.fns);
    free(s.token);
    return rc;
}

const struct cli_cmd cli_cmd_serve = {
    .name = "serve",
    .synopsis = "NAME=FILE.snap|oci://REF...",
    .summary = "serve calls to the snapshots' functions over HTTP (docs/serve.md)",
    .details = "POST /v1/NAME/FUNC with a JSON array of arguments answers {\"result\": ...};\n"
               "GET /v1/NAME lists the functions, GET /healthz, GET /metrics (Prometheus).\n"
               "Arguments by the function's signature: numbers, true/false, str as a JSON\n"
               "string, bytes as a string of hex (results the same way). Statuses: 400 bad\n"
               "JSON or arguments, 401 no token, 404 no such snapshot or function, 413 body\n"
               "over --max-body, 500 guest abort, 502 guest fault, 503 queue full (Retry-After)\n"
               "or server failure, 504 deadline. SIGTERM or SIGINT: stop accepting, answer\n"
               "every request begun, exit 0. Prints 'listening on ...' once ready.\n",
    .min_pos = 1, .max_pos = SERVE_MAX_THREADS,
    .opts = {
        { "listen", KEY_LISTEN, "HOST:PORT", "address to listen on (default "
          SERVE_DEFAULT_LISTEN "; port 0 picks one)", set_listen },
        { "listen-any", KEY_LISTEN_ANY, NULL, "allow a --listen address that is not loopback",
          set_listen_any },
        { "token-file", KEY_TOKEN_FILE, "FILE", "require Authorization: Bearer TOKEN, the "
          "file's first line", set_token_file },
        { "strategy", KEY_STRATEGY, "S", "reuse (ready pools, the default), restore (from the "
          "template per request) or new (a fresh VM per request)", set_strategy },
        { "pool", KEY_POOL, "N", "sandboxes (reuse) or blank VMs (restore) kept ready per "
          "snapshot (default 4)", set_pool },
        { "workers", KEY_WORKERS, "T", "threads that run calls (default 4)", set_workers },
        { "queue", KEY_QUEUE, "N", "calls that may wait for a worker; more get 503 "
          "(default 64)", set_queue },
        { "deadline", KEY_DEADLINE, "MS", "deadline per call (default 1000)", cli_set_deadline },
        { "max-body", KEY_MAX_BODY, "BYTES", "largest request body, e.g. 4M (default 1M)",
          set_max_body },
        { "no-seccomp", KEY_NO_SECCOMP, NULL, "do not confine the worker threads with the "
          "seccomp filter (docs/security.md)", cli_set_no_seccomp },
        CLI_OPTS_COMMON,
        CLI_OPTS_OCI,
    },
    .run = serve,
};
