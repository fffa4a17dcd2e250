/* work.c - the snapshots `serve` offers, the bounded queue of calls and the
 * worker threads that run them by the chosen strategy. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "serve/serve.h"

/* ---- targets ------------------------------------------------------------------ */

/* GET /v1/NAME: the functions and their signatures, made once. */
static char *listing(const struct serve_target *t)
{
    json_t *fns = json_array();
    SBX_OPTS(sbx_func_info, fi);
    for (size_t i = 0; fns && sbx_snapshot_function(t->snap, i, &fi, NULL) == 0; i++) {
        json_t *args = json_array();
        for (size_t a = 0; args && a < fi.nargs; a++)
            json_array_append_new(args, json_string(sbx_type_name(fi.args[a])));
        json_array_append_new(fns, json_pack("{s:o, s:o, s:s}", "name", cj_cstr(fi.name),
                                             "args", args, "ret", sbx_type_name(fi.ret)));
    }
    json_t *o = json_pack("{s:o, s:o}", "name", cj_cstr(t->name), "functions", fns);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

static int acquire(struct serve *s, struct serve_target *t, struct sbx_sandbox **sb,
                   struct sbx_diag *diag);

/* The pools of the strategy; new and restore restore once here, so that a
 * snapshot this host cannot run is refused at start, not per request. */
static int open_pools(struct serve *s, struct serve_target *t, struct sbx_diag *diag)
{
    int rc = 0;
    if (s->o.strategy != STRAT_NEW)
        rc = sbx_template_from_snapshot(t->snap, &t->tmpl, diag);
    if (rc == 0 && s->o.strategy == STRAT_RESTORE)
        rc = sbx_pool_create(sbx_template_mem_size(t->tmpl), s->o.pool, &t->blank, diag);
    if (rc == 0 && s->o.strategy != STRAT_REUSE) {
        struct sbx_sandbox *sb = NULL;
        rc = acquire(s, t, &sb, diag);
        sbx_sandbox_destroy(sb);
    }
    if (rc == 0 && s->o.strategy == STRAT_RESTORE) /* the VM the trial took */
        rc = sbx_pool_fill(t->blank, s->o.pool, diag);
    if (rc == 0 && s->o.strategy == STRAT_REUSE) {
        /* Each worker resets the sandbox it used, after answering (inline
         * release): resets run in parallel, off the request path, and never
         * pile up behind one thread. At most T are taken, so N + T bounds
         * the pool even when every take finds none ready. */
        SBX_OPTS(sbx_ready_pool_opts, po, .cfg = &s->cfg, .target = s->o.pool,
                 .max = s->o.pool + s->o.workers, .release = SBX_RELEASE_INLINE);
        rc = sbx_ready_pool_create(t->tmpl, &po, &t->ready, diag);
    }
    return rc;
}

/* NAME=FILE.snap: the name is a URL path segment, by the rule of function names. */
static int open_target(struct serve *s, struct serve_target *t, const char *spec,
                       struct sbx_diag *diag)
{
    const char *eq = strchr(spec, '=');
    if (!eq || !sbx_valid_func_name(spec, (size_t)(eq - spec)) || !eq[1])
        return sbx_fail(diag, SBX_E_INVAL, "'%s' is not NAME=FILE.snap (NAME: 1 to %u of "
                        "A-Z a-z 0-9 _)", spec, SBX_MAX_NAME);
    t->name = strndup(spec, (size_t)(eq - spec));
    t->path = eq + 1;
    if (!t->name)
        return sbx_fail(diag, SBX_E_NOMEM, "out of memory");
    for (const struct serve_target *o = s->targets; o < t; o++)
        if (!strcmp(o->name, t->name))
            return sbx_fail(diag, SBX_E_INVAL, "the name '%s' is given twice", t->name);
    /* the one place a FILE becomes a snapshot: oci://REF joins here */
    int rc = cli_open_snapshot(s->cli, t->path, &t->snap, diag);
    if (rc == 0)
        rc = open_pools(s, t, diag);
    if (rc == 0 && !(t->listing = listing(t)))
        rc = sbx_fail(diag, SBX_E_NOMEM, "out of memory");
    return rc;
}

static char *index_json(const struct serve *s)
{
    json_t *names = json_array();
    for (size_t i = 0; names && i < s->ntargets; i++)
        json_array_append_new(names, cj_cstr(s->targets[i].name));
    json_t *o = json_pack("{s:o, s:s}", "snapshots", names, "strategy",
                          s->o.strategy == STRAT_NEW ? "new"
                          : s->o.strategy == STRAT_RESTORE ? "restore" : "reuse");
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

int serve_targets_open(struct serve *s, char **specs, int nspecs, struct sbx_diag *diag)
{
    s->targets = calloc((size_t)nspecs, sizeof *s->targets);
    if (!s->targets)
        return sbx_fail(diag, SBX_E_NOMEM, "out of memory");
    for (int i = 0; i < nspecs; i++) {
        s->ntargets = (size_t)i + 1;
        if (open_target(s, &s->targets[i], specs[i], diag))
            return diag->code;
    }
    if (!(s->index = index_json(s)))
        return sbx_fail(diag, SBX_E_NOMEM, "out of memory");
    return 0;
}

void serve_targets_close(struct serve *s)
{
    for (size_t i = 0; i < s->ntargets; i++) {
        struct serve_target *t = &s->targets[i];
        if (t->ready)
            sbx_ready_pool_free(t->ready);
        sbx_pool_free(t->blank);
        sbx_template_free(t->tmpl);
        sbx_snapshot_free(t->snap);
        free(t->listing);
        free(t->name);
    }
    free(s->targets);
    free(s->index);
    s->targets = NULL;
    s->ntargets = 0;
}

/* ---- the queue ------------------------------------------------------------------ */

bool serve_enqueue(struct serve *s, struct serve_job *j, void (*suspend)(struct serve_job *))
{
    pthread_mutex_lock(&s->lock);
    bool ok = !s->workers_stop && s->q_len < s->o.queue;
    if (ok) {
        suspend(j);
        s->q[(s->q_head + s->q_len++) % s->o.queue] = j;
        atomic_fetch_add(&s->m.queued, 1);
        pthread_cond_signal(&s->work_cv);
    }
    pthread_mutex_unlock(&s->lock);
    return ok;
}

/* The next job, or NULL when the workers are told to stop (queue drained). */
static struct serve_job *dequeue(struct serve *s)
{
    pthread_mutex_lock(&s->lock);
    while (!s->q_len && !s->workers_stop)
        pthread_cond_wait(&s->work_cv, &s->lock);
    struct serve_job *j = NULL;
    if (s->q_len) {
        j = s->q[s->q_head];
        s->q_head = (s->q_head + 1) % s->o.queue;
        s->q_len--;
        atomic_fetch_sub(&s->m.queued, 1);
    }
    pthread_mutex_unlock(&s->lock);
    return j;
}

/* ---- running a call ------------------------------------------------------------------ */

/* A sandbox for one call, by the strategy. */
static int acquire(struct serve *s, struct serve_target *t, struct sbx_sandbox **sb,
                   struct sbx_diag *diag)
{
    switch (s->o.strategy) {
    case STRAT_NEW:
        return sbx_sandbox_restore(t->snap, &s->cfg, sb, diag);
    case STRAT_RESTORE: {
        int rc = sbx_sandbox_from_template(t->tmpl, &s->cfg, t->blank, sb, diag);
        if (s->refill_started) {
            pthread_mutex_lock(&s->lock);
            s->refill_wanted = true;
            pthread_cond_signal(&s->refill_cv);
            pthread_mutex_unlock(&s->lock);
        }
        return rc;
    }
    default:
        /* at most T are taken and max is N + T: take waits only while its
         * sandbox is being reset by another worker */
        return sbx_ready_pool_take(t->ready, s->cfg.deadline_ms, sb, diag);
    }
}

/* Whatever the call did, the sandbox is reset by the ready pool (a reset
 * that fails destroys it there) or destroyed: never reused dirty. */
static void give_back(struct serve *s, struct serve_target *t, struct sbx_sandbox *sb)
{
    struct sbx_diag diag = { 0 };
    if (s->o.strategy != STRAT_REUSE)
        sbx_sandbox_destroy(sb);
    else if (sbx_ready_pool_release(t->ready, sb, &diag))
        cli_log(NULL, SBX_LOG_WARN, diag.msg); /* gone either way (inline release) */
}

static char *result_json(const struct sbx_value *ret)
{
    json_t *o = json_pack("{s:o}", "result", cj_value(ret));
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(o);
    return text;
}

/* Run j's call and write its response; the sandbox it used is returned, to
 * give back once the response is on its way. */
static struct sbx_sandbox *run_job(struct serve *s, struct serve_job *j)
{
    struct sbx_diag diag = { 0 };
    struct sbx_sandbox *sb = NULL;
    struct sbx_value ret;
    enum serve_kind kind = KIND_INTERNAL;
    int rc = acquire(s, j->t, &sb, &diag);
    if (rc == 0) {
        rc = sbx_sandbox_call(sb, j->fi.name, j->v, j->fi.nargs, &ret, &diag);
        /* the result points into the sandbox: written out before it goes back */
        if (rc == 0 && !(j->resp = result_json(&ret)))
            rc = sbx_fail(&diag, SBX_E_NOMEM, "out of memory for the result");
    }
    j->status = 200;
    if (rc) {
        /* taking or restoring a sandbox failed: the server's failure, not the guest's */
        j->status = sb ? serve_status_of(rc, &kind) : 503;
        j->resp = serve_error_json(j->status, NULL, &diag);
        serve_count_error(s, kind);
    }
    serve_observe_call(s, cli_now_ms() - j->t0);
    return sb;
}

static void *worker(void *arg)
{
    struct serve *s = arg;
    struct serve_job *j;
    /* Confine this thread: it runs guests and needs no socket. The network
     * thread (libmicrohttpd's) stays unconfined; docs/serve.md. */
    if (!s->cli->no_seccomp) {
        struct sbx_diag diag = { 0 };
        if (sbx_seccomp_confine(0, &diag)) {
            cli_log(NULL, SBX_LOG_ERROR, diag.msg);
            abort(); /* a worker that cannot be confined must not run guests */
        }
    }
    while ((j = dequeue(s))) {
        atomic_fetch_add(&s->m.running, 1);
        struct serve_target *t = j->t;
        struct sbx_sandbox *sb = run_job(s, j);
        serve_job_finished(j); /* j is libmicrohttpd's again: not touched below */
        /* the reset or destroy is off the request's path, on this worker */
        if (sb)
            give_back(s, t, sb);
        atomic_fetch_sub(&s->m.running, 1);
    }
    return NULL;
}

/* restore: the blank VMs taken are made again off the request path. */
static void *refiller(void *arg)
{
    struct serve *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->refill_wanted && !s->refill_stop)
            pthread_cond_wait(&s->refill_cv, &s->lock);
        if (s->refill_stop)
            break;
        s->refill_wanted = false;
        pthread_mutex_unlock(&s->lock);
        for (size_t i = 0; i < s->ntargets; i++) {
            struct sbx_diag diag = { 0 };
            if (sbx_pool_fill(s->targets[i].blank, s->o.pool, &diag))
                cli_log(NULL, SBX_LOG_WARN, diag.msg);
        }
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int serve_workers_start(struct serve *s, struct sbx_diag *diag)
{
    s->q = calloc(s->o.queue, sizeof *s->q);
    s->workers = calloc(s->o.workers, sizeof *s->workers);
    if (!s->q || !s->workers)
        return sbx_fail(diag, SBX_E_NOMEM, "out of memory");
    if (s->o.strategy == STRAT_RESTORE) {
        if (pthread_create(&s->refill, NULL, refiller, s))
            return sbx_fail(diag, SBX_E_NOMEM, "cannot start the refill thread");
        s->refill_started = true;
    }
    for (; s->nworkers < s->o.workers; s->nworkers++)
        if (pthread_create(&s->workers[s->nworkers], NULL, worker, s))
            return sbx_fail(diag, SBX_E_NOMEM, "cannot start worker %zu", s->nworkers);
    return 0;
}

/* After the queue drained (or was never used): join every thread. */
void serve_workers_stop(struct serve *s)
{
    pthread_mutex_lock(&s->lock);
    s->workers_stop = s->refill_stop = true;
    pthread_cond_broadcast(&s->work_cv);
    pthread_cond_broadcast(&s->refill_cv);
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i], NULL);
    if (s->refill_started)
        pthread_join(s->refill, NULL);
    free(s->workers);
    free(s->q);
    s->workers = NULL;
    s->q = NULL;
    s->nworkers = 0;
    s->refill_started = false;
}
