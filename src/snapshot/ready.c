/* ready.c - ready pools: sandboxes restored ahead of requests, reset after them.
 *
 * One lock guards the lists and counters; KVM work (restore, reset, destroy)
 * always happens outside it. The pool's thread resets released sandboxes
 * first and refills second, so a sandbox handed back is ready again before a
 * new one is made. The pool's size is target: it refills what failed resets
 * destroyed; sandboxes a burst of takes made beyond it are destroyed when
 * they come back. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "snapshot.h"

struct sbx_list {
    struct sbx_sandbox **v;
    size_t n, cap;
};

struct sbx_ready_pool {
    pthread_mutex_t lock;
    pthread_cond_t changed; /* for takers and waiters: a sandbox became ready or went away */
    pthread_cond_t work;    /* for the pool's thread: a released sandbox, a refill, or stop */
    pthread_t thread;
    bool thread_started, stop;
    const struct sbx_template *t; /* held */
    struct sbx_config cfg;        /* held reference to cfg.host_fns */
    struct sbx_ready_pool_opts o;
    struct sbx_list ready, released;
    size_t taken, resetting, making, alive;
    size_t waiting;               /* takers waiting for a reset or refill under way */
    uint64_t *ws;                 /* working set: pages the first requests touched */
    uint32_t ws_seen;             /* requests recorded in ws so far */
    struct sbx_ready_pool_stats st;
};

static size_t words_of(const struct sbx_template *t) { return (size_t)(t->mem_size / SBX_PAGE_SIZE + 63) / 64; }

static bool ws_done(const struct sbx_ready_pool *p) { return p->ws_seen >= p->o.working_set_requests; }

static int list_push(struct sbx_list *l, struct sbx_sandbox *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 8;
        struct sbx_sandbox **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return SBX_E_NOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return 0;
}

static void list_destroy(struct sbx_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        sbx_sandbox_destroy(l->v[i]);
    free(l->v);
    *l = (struct sbx_list){ 0 };
}

/* A copy of the working set for one sandbox, or NULL while it is unknown. */
static uint64_t *ws_copy(struct sbx_ready_pool *p)
{
    pthread_mutex_lock(&p->lock);
    uint64_t *c = NULL;
    if (ws_done(p) && (c = malloc(words_of(p->t) * sizeof *c)))
        memcpy(c, p->ws, words_of(p->t) * sizeof *c);
    pthread_mutex_unlock(&p->lock);
    return c;
}

/* Fault in the working set's pages the restore did not copy, so the first
 * request does not pay for them. Advice: a kernel without it still works. */
static void prefault(struct sbx_sandbox *s, const uint64_t *ws)
{
    uint64_t pages = s->vm.mem_size / SBX_PAGE_SIZE, run = 0;
    for (uint64_t pg = 0; pg <= pages; pg++) {
        bool want = pg < pages && ((ws[pg / 64] >> (pg % 64)) & 1) &&
                    !sbx_template_page_stored(s->tpl, pg);
        if (want) {
            run++;
            continue;
        }
        if (run)
            madvise(s->vm.mem + (pg - run) * SBX_PAGE_SIZE, run * SBX_PAGE_SIZE, MADV_POPULATE_WRITE);
        run = 0;
    }
}

static int make_one(struct sbx_ready_pool *p, struct sbx_sandbox **out, struct sbx_diag *diag)
{
    struct sbx_sandbox *s = NULL;
    int rc = sbx_sandbox_from_template(p->t, &p->cfg, NULL, &s, diag);
    if (rc)
        return rc;
    sbx_sandbox_set_owner(s, p);
    uint64_t *ws = ws_copy(p);
    if (ws) {
        if (p->cfg.mem_mode == SBX_MEM_COPY)
            prefault(s, ws);
        sbx_sandbox_set_keep(s, ws);
    }
    *out = s;
    return 0;
}

/* Before its reset: the pages a released sandbox touched join the working
 * set while the first requests are being recorded. */
static void record_ws(struct sbx_ready_pool *p, struct sbx_sandbox *s)
{
    pthread_mutex_lock(&p->lock);
    bool recording = !ws_done(p);
    pthread_mutex_unlock(&p->lock);
    if (!recording)
        return;
    uint64_t *touched = sbx_vm_touched_pages(&s->vm);
    if (!touched)
        return;
    pthread_mutex_lock(&p->lock);
    if (!ws_done(p)) {
        uint64_t n = 0;
        for (size_t i = 0; i < words_of(p->t); i++)
            n += (uint64_t)__builtin_popcountll(p->ws[i] |= touched[i]);
        if (++p->ws_seen == p->o.working_set_requests)
            p->st.working_set_pages = n;
    }
    pthread_mutex_unlock(&p->lock);
    free(touched);
}

/* The pool's size counts its sandboxes wherever they are: ready, taken,
 * queued for a reset, being reset or made. */
static bool needs_refill(const struct sbx_ready_pool *p) { return p->alive < p->o.target; }

/* Reset a released sandbox and make it ready, or destroy it if the reset
 * fails (the pool's thread makes a replacement). The caller counted it in
 * p->resetting. */
static int reset_one(struct sbx_ready_pool *p, struct sbx_sandbox *s, struct sbx_diag *diag)
{
    record_ws(p, s);
    if (!s->keep)
        sbx_sandbox_set_keep(s, ws_copy(p));
    int rc = sbx_sandbox_reset(s, diag);
    pthread_mutex_lock(&p->lock);
    p->resetting--;
    /* made by a take in a burst, and no taker is waiting for it */
    bool surplus = rc == 0 && p->alive > p->o.target && p->waiting == 0;
    if (rc == 0 && !surplus && (rc = list_push(&p->ready, s)) != 0)
        sbx_fail(diag, rc, "%s: out of memory for the ready pool's list", p->t->path);
    if (rc == 0)
        p->st.resets++;
    else
        p->st.replaced++;
    p->st.retired += surplus;
    if (rc || surplus)
        p->alive--;
    if (rc && needs_refill(p))
        pthread_cond_signal(&p->work);
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
    if (rc || surplus)
        sbx_sandbox_destroy(s);
    return rc;
}

static struct timespec after_ms(uint32_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L)
        ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    return ts;
}

/* One refill, outside the lock (held on entry and return). A failure backs
 * off so a persistent one (memory, KVM) does not spin. */
static void refill_one(struct sbx_ready_pool *p)
{
    p->making++, p->alive++;
    pthread_mutex_unlock(&p->lock);
    struct sbx_sandbox *s = NULL;
    int rc = make_one(p, &s, NULL);
    pthread_mutex_lock(&p->lock);
    p->making--;
    if (rc == 0 && list_push(&p->ready, s) == 0) {
        p->st.refills++;
    } else {
        p->alive--, p->st.refill_failures++;
        pthread_cond_broadcast(&p->changed); /* takers waiting for it go on now */
        pthread_mutex_unlock(&p->lock);
        sbx_sandbox_destroy(s);
        pthread_mutex_lock(&p->lock);
        struct timespec backoff = after_ms(100);
        pthread_cond_timedwait(&p->work, &p->lock, &backoff);
    }
    pthread_cond_broadcast(&p->changed);
}

static void *pool_thread(void *arg)
{
    struct sbx_ready_pool *p = arg;
    pthread_mutex_lock(&p->lock);
    while (!p->stop) {
        if (p->released.n) {
            struct sbx_sandbox *s = p->released.v[--p->released.n];
            p->resetting++;
            pthread_mutex_unlock(&p->lock);
            reset_one(p, s, NULL);
            pthread_mutex_lock(&p->lock);
        } else if (needs_refill(p)) {
            refill_one(p);
        } else {
            pthread_cond_wait(&p->work, &p->lock);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static int pool_init(struct sbx_ready_pool *p, const struct sbx_template *t,
                     const struct sbx_ready_pool_opts *opts, struct sbx_diag *diag)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->changed, &ca);
    pthread_cond_init(&p->work, &ca);
    pthread_condattr_destroy(&ca);
    sbx_template_hold(t);
    p->t = t;
    int rc = sbx_opts_in(&p->o, sizeof p->o, opts, "sbx_ready_pool_opts", diag);
    if (rc || (rc = sbx_opts_in(&p->cfg, sizeof p->cfg, p->o.cfg, "sbx_config", diag)))
        return rc;
    p->o.cfg = NULL; /* the caller's; p->cfg is the copy */
    if (p->cfg.host_fns)
        sbx_host_fns_hold(p->cfg.host_fns);
    if (!p->cfg.mem_mode)
        p->cfg.mem_mode = SBX_MEM_COPY;
    if (!p->o.target)
        p->o.target = SBX_READY_DEFAULT_TARGET;
    if (!p->o.working_set_requests)
        p->o.working_set_requests = SBX_READY_DEFAULT_WS_REQUESTS;
    if (p->cfg.gdb_addr)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_ready_pool_opts: cfg.gdb_addr is set; a sandbox "
                        "with a gdb session is never reset, so it cannot be pooled");
    if (p->o.max && p->o.max < p->o.target)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_ready_pool_opts: max %zu is below target %zu",
                        p->o.max, p->o.target);
    if (p->o.release > SBX_RELEASE_BACKGROUND)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_ready_pool_opts: unknown release mode %d",
                        (int)p->o.release);
    p->st.target = p->o.target;
    if (!(p->ws = calloc(words_of(t), sizeof *p->ws)))
        return sbx_fail(diag, SBX_E_NOMEM, "%s: out of memory for a ready pool", t->path);
    return 0;
}

int sbx_ready_pool_create(const struct sbx_template *t, const struct sbx_ready_pool_opts *opts,
                          struct sbx_ready_pool **out, struct sbx_diag *diag)
{
    if (!t || !out)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_ready_pool_create: template and out are required");
    struct sbx_ready_pool *p = calloc(1, sizeof *p);
    if (!p)
        return sbx_fail(diag, SBX_E_NOMEM, "%s: out of memory for a ready pool", t->path);
    int rc = pool_init(p, t, opts, diag);
    while (rc == 0 && p->ready.n < p->o.target) {
        struct sbx_sandbox *s = NULL;
        if ((rc = make_one(p, &s, diag)) == 0 && (rc = list_push(&p->ready, s)) != 0) {
            sbx_sandbox_destroy(s);
            sbx_fail(diag, rc, "%s: out of memory for the ready pool's list", t->path);
        }
        p->alive += rc == 0;
    }
    if (rc == 0 && (rc = pthread_create(&p->thread, NULL, pool_thread, p)) != 0)
        rc = sbx_fail(diag, SBX_E_NOMEM, "%s: cannot start the ready pool's thread: %s", t->path,
                      strerror(rc));
    if (rc) {
        sbx_ready_pool_free(p);
        return rc;
    }
    p->thread_started = true;
    *out = p;
    return 0;
}

/* Held lock on entry and return: 0 and *out, or SBX_E_TIMEOUT. */
static int take_locked(struct sbx_ready_pool *p, uint32_t timeout_ms, struct sbx_sandbox **out,
                       bool *make)
{
    struct timespec end = after_ms(timeout_ms);
    bool timed_out = false;
    for (;;) {
        if (p->ready.n) {
            *out = p->ready.v[--p->ready.n];
            return 0;
        }
        /* A reset or a refill under way is cheaper to wait for than a restore. */
        bool coming = p->released.n || p->resetting || p->making;
        bool may_make = p->o.max == 0 || p->alive < p->o.max;
        if (may_make && (!coming || timed_out)) {
            *make = true;
            return 0;
        }
        if (timed_out)
            return SBX_E_TIMEOUT;
        p->waiting++;
        timed_out = pthread_cond_timedwait(&p->changed, &p->lock, &end) == ETIMEDOUT;
        p->waiting--;
    }
}

int sbx_ready_pool_take(struct sbx_ready_pool *p, uint32_t timeout_ms, struct sbx_sandbox **out,
                        struct sbx_diag *diag)
{
    if (!p || !out)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_ready_pool_take: pool and out are required");
    bool make = false;
    pthread_mutex_lock(&p->lock);
    int rc = take_locked(p, timeout_ms, out, &make);
    if (rc == 0)
        p->taken++, p->alive += make, p->st.takes += !make;
    pthread_mutex_unlock(&p->lock);
    if (rc)
        return sbx_fail(diag, rc, "%s: no sandbox came free within %u ms (the ready pool is at "
                        "its limit of %zu)", p->t->path, timeout_ms, p->o.max);
    if (!make)
        return 0;
    rc = make_one(p, out, diag);
    pthread_mutex_lock(&p->lock);
    if (rc)
        p->taken--, p->alive--;
    else
        p->st.takes++, p->st.misses++;
    pthread_cond_broadcast(&p->changed); /* a taker waiting at max may make one now */
    pthread_mutex_unlock(&p->lock);
    return rc;
}

int sbx_ready_pool_release(struct sbx_ready_pool *p, struct sbx_sandbox *s, struct sbx_diag *diag)
{
    if (!p || !s || sbx_sandbox_owner(s) != p)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_ready_pool_release: the sandbox was not taken "
                        "from this ready pool");
    if (atomic_load(&s->in_call))
        return sbx_fail(diag, SBX_E_BUSY, "sbx_ready_pool_release: the sandbox is in a call");
    bool inline_ = p->o.release == SBX_RELEASE_INLINE;
    pthread_mutex_lock(&p->lock);
    p->taken--;
    int rc = 0;
    if (inline_)
        p->resetting++;
    else if ((rc = list_push(&p->released, s)) != 0)
        p->alive--, p->st.replaced++;
    if (!inline_)
        pthread_cond_signal(&p->work); /* a reset to run, or a replacement to make */
    if (rc)
        pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
    if (rc) { /* cannot queue it: it must not be reused unreset */
        sbx_sandbox_destroy(s);
        return 0;
    }
    return inline_ ? reset_one(p, s, diag) : 0;
}

/* Bytes of [mem, mem + len) resident in this process. */
static uint64_t resident(const void *mem, uint64_t len)
{
    size_t pages = (size_t)(len / SBX_PAGE_SIZE);
    unsigned char *vec = malloc(pages ? pages : 1);
    uint64_t n = 0;
    if (vec && mincore((void *)mem, (size_t)len, vec) == 0)
        for (size_t i = 0; i < pages; i++)
            n += vec[i] & 1;
    free(vec);
    return n * SBX_PAGE_SIZE;
}

/* Where the ready sandboxes' memory is: taken under the lock, measured
 * outside it, so a scrape of the statistics does not hold up takes. */
struct mem_range {
    const void *mem;
    uint64_t size;
};

int sbx_ready_pool_stats(struct sbx_ready_pool *p, struct sbx_ready_pool_stats *out,
                         struct sbx_diag *diag)
{
    if (!p || !out)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_ready_pool_stats: pool and out are required");
    pthread_mutex_lock(&p->lock);
    struct sbx_ready_pool_stats st = p->st;
    st.sz = sizeof st;
    st.ready = p->ready.n, st.taken = p->taken, st.resetting = p->resetting + p->released.n;
    struct mem_range *r = malloc((p->ready.n ? p->ready.n : 1) * sizeof *r);
    for (size_t i = 0; r && i < p->ready.n; i++)
        r[i] = (struct mem_range){ p->ready.v[i]->vm.mem, p->ready.v[i]->vm.mem_size };
    pthread_mutex_unlock(&p->lock);
    /* one taken and destroyed meanwhile reads as not resident (mincore fails) */
    for (size_t i = 0; r && i < st.ready; i++)
        st.ready_resident += resident(r[i].mem, r[i].size);
    free(r);
    st.template_resident = resident(p->t->mem, p->t->mem_size);
    return sbx_opts_out(out, &st, sizeof st, "sbx_ready_pool_stats", diag);
}

int sbx_ready_pool_wait(struct sbx_ready_pool *p, uint32_t timeout_ms, struct sbx_diag *diag)
{
    if (!p)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_ready_pool_wait: pool is required");
    struct timespec end = after_ms(timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&p->lock);
    while (rc == 0 && (p->released.n || p->resetting || p->making ||
                       p->ready.n + p->taken < p->o.target))
        if (pthread_cond_timedwait(&p->changed, &p->lock, &end) == ETIMEDOUT)
            rc = SBX_E_TIMEOUT;
    size_t ready = p->ready.n;
    pthread_mutex_unlock(&p->lock);
    if (rc)
        return sbx_fail(diag, rc, "%s: the ready pool holds %zu of its %zu sandboxes after %u ms",
                        p->t->path, ready, p->o.target, timeout_ms);
    return 0;
}

void sbx_ready_pool_free(struct sbx_ready_pool *p)
{
    if (!p)
        return;
    if (p->thread_started) {
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_signal(&p->work);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
    }
    list_destroy(&p->ready);
    list_destroy(&p->released);
    sbx_host_fns_release(p->cfg.host_fns);
    sbx_template_release(p->t);
    free(p->ws);
    pthread_cond_destroy(&p->changed);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
