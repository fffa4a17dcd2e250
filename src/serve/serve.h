/* serve.h - `snapbox serve`: an HTTP/1.1 server (libmicrohttpd) in front of
 * sandboxes. Part of the CLI, not of libsnapbox: the library never depends on
 * libmicrohttpd. docs/serve.md describes the API, statuses and metrics.
 *
 * Threads: libmicrohttpd's one polling thread reads requests, parses them and
 * answers whatever needs no guest (errors, GET); calls go into a bounded
 * queue (full: 503) and the connection is suspended until one of the
 * workers has run the call on its own thread and resumed it. */
#ifndef SBX_SERVE_H
#define SBX_SERVE_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "cli/cli.h"

enum serve_strategy {
    STRAT_REUSE = 0, /* ready pools: take, call, release (the default) */
    STRAT_RESTORE,   /* from the template into a blank pooled VM, then destroy */
    STRAT_NEW,       /* restore the snapshot into a fresh VM, then destroy */
};

/* The command line of `snapbox serve`, beyond struct cli (cmd_serve.c). */
struct serve_opts {
    const char *listen;     /* HOST:PORT */
    bool listen_any;        /* allow a non-loopback address */
    size_t pool, workers, queue;
    uint64_t max_body;
    const char *token_file;
    enum serve_strategy strategy;
};

/* One NAME=FILE.snap: its snapshot, template and pools, opened at start. */
struct serve_target {
    char *name;
    const char *path;
    struct sbx_snapshot *snap;
    struct sbx_template *tmpl;       /* restore, reuse */
    struct sbx_ready_pool *ready;    /* reuse */
    struct sbx_pool *blank;          /* restore: refilled by the refill thread */
    char *listing;                   /* GET /v1/NAME's body, made once */
    atomic_uint_fast64_t requests;
};

/* Errors that are not the library's: their names in JSON and metrics. */
enum serve_kind {
    KIND_BAD_JSON, KIND_BAD_ARGS, KIND_NOT_FOUND, KIND_METHOD, KIND_TOO_LARGE,
    KIND_UNAUTHORIZED, KIND_QUEUE_FULL, KIND_SHUTTING_DOWN, KIND_GUEST_ABORT,
    KIND_GUEST_FAULT, KIND_TIMEOUT, KIND_INTERNAL, KIND_COUNT_
};
const char *serve_kind_name(enum serve_kind k);

/* The metrics (metrics.c): lock-free counters, read by GET /metrics. */
#define SERVE_NBUCKETS 14
struct serve_metrics {
    atomic_uint_fast64_t by_status[600];
    atomic_uint_fast64_t errors[KIND_COUNT_];
    atomic_uint_fast64_t bucket[SERVE_NBUCKETS + 1]; /* call latency, the last is +Inf */
    atomic_uint_fast64_t latency_us_sum, calls;
    atomic_uint_fast64_t queued, running;
};

struct serve_job;

struct serve {
    struct cli *cli;
    struct serve_opts o;
    struct sbx_config cfg;
    struct sbx_host_fns *fns;
    struct serve_target *targets;
    size_t ntargets;
    char *token;
    size_t token_len;
    char *index;                     /* GET /v1's body */
    struct serve_metrics m;

    /* the queue of calls and the workers (work.c) */
    pthread_mutex_t lock;
    pthread_cond_t work_cv, idle_cv, refill_cv;
    struct serve_job **q;            /* ring of o.queue slots */
    size_t q_head, q_len;
    size_t open_requests;            /* begun and not yet completed (drain on SIGTERM) */
    bool stopping, workers_stop, refill_stop, refill_wanted;
    pthread_t *workers, refill;
    size_t nworkers;
    bool refill_started;
};

/* A call, from the request's arrival to its response (http.c, work.c). */
struct serve_job {
    void *conn;                      /* struct MHD_Connection */
    struct serve_target *t;
    struct sbx_func_info fi;
    char *body;
    size_t len;
    bool awaiting_body, too_large, done;
    double t0;
    struct sbx_value v[SBX_MAX_ARGS];
    void *owned[SBX_MAX_ARGS];
    json_t *doc;                     /* the parsed body: str arguments point into it */
    unsigned status;                 /* the response, when done */
    char *resp;
};

/* ---- args.c --------------------------------------------------------------- */
/* A request body (a JSON array) as fi's arguments: 0, or SBX_E_ARGS /
 * SBX_E_INVAL (malformed JSON, not an array) with the problem in diag. */
int serve_args(const char *body, size_t len, const struct sbx_func_info *fi,
               struct sbx_value *v, void **owned, json_t **doc, struct sbx_diag *diag);
void serve_args_free(void **owned);

/* ---- work.c --------------------------------------------------------------- */
int serve_targets_open(struct serve *s, char **specs, int nspecs, struct sbx_diag *diag);
void serve_targets_close(struct serve *s);
int serve_workers_start(struct serve *s, struct sbx_diag *diag);
void serve_workers_stop(struct serve *s);
/* Queue a job: false when the queue is full (the caller answers 503). The
 * caller suspends the connection before the job can run: suspend is called
 * under the queue's lock, through suspend(job). */
bool serve_enqueue(struct serve *s, struct serve_job *j, void (*suspend)(struct serve_job *));
/* Where the worker hands a finished job back (http.c): resume its connection. */
void serve_job_finished(struct serve_job *j);

/* ---- http.c ---------------------------------------------------------------- */
/* Serve until SIGTERM or SIGINT, then drain and return 0, or an exit code. */
int serve_http(struct serve *s, const struct sockaddr *addr, const char *shown,
               struct sbx_diag *diag);
/* {"error": {"code", "message", "status", ...}}, malloc'd; NULL on OOM. */
char *serve_error_json(unsigned status, const char *code, const struct sbx_diag *diag);
/* The status and kind of a library error from a call. */
unsigned serve_status_of(int err, enum serve_kind *kind);

/* ---- metrics.c ------------------------------------------------------------- */
void serve_count_response(struct serve *s, unsigned status);
void serve_count_error(struct serve *s, enum serve_kind k);
void serve_observe_call(struct serve *s, double ms);
/* The Prometheus text exposition, malloc'd; NULL on OOM. */
char *serve_metrics_text(struct serve *s);

#endif
