/* ready.c - ready pools: what a request pays to take and give back a ready
 * sandbox, and what a ready sandbox keeps resident (density), per guest
 * memory size and for the real guests. */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench.h"
#include "snapshot/snapshot.h"

#define REQS 50
#define WS_REQUESTS 4

static void must(int rc, const struct sbx_diag *d, const char *what)
{
    if (rc)
        bench_die("%s: %s", what, d->msg);
}

static struct sbx_ready_pool *pool_of(const struct sbx_template *t, size_t target, size_t max,
                                      enum sbx_release_mode mode)
{
    SBX_OPTS(sbx_config, cfg, .deadline_ms = 120000);
    SBX_OPTS(sbx_ready_pool_opts, o, .cfg = &cfg, .target = target, .max = max, .release = mode,
             .working_set_requests = WS_REQUESTS);
    struct sbx_ready_pool *p = NULL;
    struct sbx_diag d = { 0 };
    must(sbx_ready_pool_create(t, &o, &p, &d), &d, "ready pool");
    return p;
}

static struct sbx_ready_pool_stats stats_of(struct sbx_ready_pool *p)
{
    SBX_OPTS(sbx_ready_pool_stats, st);
    struct sbx_diag d = { 0 };
    must(sbx_ready_pool_stats(p, &st, &d), &d, "stats");
    return st;
}

static uint64_t template_bytes(const struct sbx_template *t)
{
    uint64_t n = 0;
    for (uint32_t r = 0; r < t->nruns; r++)
        n += t->runs[r].len;
    return n;
}

/* The bench guest at this column's memory size: take, a call dirtying 10
 * pages, release with the reset inline; then what one ready sandbox holds. */
void bench_ready(struct bench *b, int k, const struct sbx_template *t)
{
    struct sbx_ready_pool *p = pool_of(t, 2, 0, SBX_RELEASE_INLINE);
    struct sbx_diag d = { 0 };
    struct sbx_value arg = { .type = SBX_T_U64, .u.u64 = 10 };
    double take[REQS], cycle[REQS];
    for (int r = 0; r < REQS; r++) {
        struct sbx_sandbox *s = NULL;
        double t0 = bench_now_us();
        must(sbx_ready_pool_take(p, 10000, &s, &d), &d, "take");
        double t1 = bench_now_us();
        must(sbx_sandbox_call(s, "dirty", &arg, 1, NULL, &d), &d, "dirty");
        must(sbx_ready_pool_release(p, s, &d), &d, "release");
        take[r] = t1 - t0;
        cycle[r] = bench_now_us() - t0;
    }
    bench_set(b, "ready pool: take (no KVM call, no copy)", "us", k, bench_median(take, REQS));
    bench_set(b, "ready pool: take + call dirtying 10 pages + release (reset inline)", "us", k,
              bench_median(cycle, REQS));
    must(sbx_ready_pool_wait(p, 60000, &d), &d, "wait");
    struct sbx_ready_pool_stats st = stats_of(p);
    double per = (double)st.ready_resident / (double)(st.ready ? st.ready : 1);
    bench_set(b, "ready sandbox: guest memory resident", "bytes", k, per);
    bench_set(b, "  its template's non-zero pages", "bytes", k, (double)template_bytes(t));
    bench_set(b, "  its working set (template pages included)", "bytes", k,
              (double)st.working_set_pages * SBX_GUEST_PAGE_SIZE);
    sbx_ready_pool_free(p);
}

static long meminfo_kib(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0)
            v = strtol(line + n, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

/* As many ready sandboxes of a real guest as a platform would hold: 1000,
 * or fewer where the descriptor limit (three per VM) or half of the
 * machine's available memory would not take them. After their working set
 * is known: this process's resident memory per sandbox, and the machine's
 * (KVM's own memory and page tables included). */
static size_t density_count(uint64_t ws_bytes)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    size_t n = 1000;
    if (rl.rlim_cur < 3 * n + 64)
        n = rl.rlim_cur > 64 + 30 ? (size_t)(rl.rlim_cur - 64) / 3 : 10;
    uint64_t avail = (uint64_t)meminfo_kib("/proc/meminfo", "MemAvailable:") * 1024;
    uint64_t each = ws_bytes + (256u << 10); /* KVM's part, generously */
    if (avail / 2 / each < n)
        n = (size_t)(avail / 2 / each);
    return n ? n : 1;
}

/* Every sandbox serves one request, so each holds what a serving one
 * holds: the template's pages and the pages a request touches. */
static void serve_each(struct sbx_ready_pool *p, size_t n, const char *func, const char *arg)
{
    struct sbx_sandbox **s = calloc(n, sizeof *s);
    struct sbx_diag d = { 0 };
    struct sbx_value a = { .type = SBX_T_STR, .u.buf = { arg, strlen(arg) } };
    if (!s)
        bench_die("out of memory");
    for (size_t i = 0; i < n; i++) {
        must(sbx_ready_pool_take(p, 10000, &s[i], &d), &d, "take");
        must(sbx_sandbox_call(s[i], func, &a, 1, NULL, &d), &d, func);
    }
    for (size_t i = 0; i < n; i++)
        must(sbx_ready_pool_release(p, s[i], &d), &d, "release");
    free(s);
}

void bench_density(struct bench *b, const char *guest, int k, const struct sbx_template *t,
                   const char *func, const char *arg)
{
    size_t n = density_count(template_bytes(t) * 2);
    long rss0 = meminfo_kib("/proc/self/status", "VmRSS:");
    long avail0 = meminfo_kib("/proc/meminfo", "MemAvailable:");
    double t0 = bench_now_us();
    /* at max, so that taking them all does not make the pool refill */
    struct sbx_ready_pool *p = pool_of(t, n, n, SBX_RELEASE_INLINE);
    double made = bench_now_us() - t0;
    serve_each(p, n, func, arg);
    long rss1 = meminfo_kib("/proc/self/status", "VmRSS:");
    long avail1 = meminfo_kib("/proc/meminfo", "MemAvailable:");
    struct sbx_ready_pool_stats st = stats_of(p);
    char name[80];
#define ROW(what, unit, v) (snprintf(name, sizeof name, "%s: %s", guest, what), bench_set(b, name, unit, k, v))
    ROW("ready sandboxes, each after one request (density)", "n", (double)n);
    ROW("  time to make each (restore, on one thread)", "us", made / (double)n);
    ROW("  guest memory resident per ready sandbox", "bytes",
        (double)st.ready_resident / (double)(st.ready ? st.ready : 1));
    ROW("  its working set (template pages included)", "bytes",
        (double)st.working_set_pages * SBX_GUEST_PAGE_SIZE);
    ROW("  process RSS per ready sandbox", "bytes", (double)(rss1 - rss0) * 1024.0 / (double)n);
    ROW("  machine memory per ready sandbox (KVM's included)", "bytes",
        (double)(avail0 - avail1) * 1024.0 / (double)n);
    ROW("  ready sandboxes per GiB of machine memory", "n",
        avail0 > avail1 ? (double)(1ull << 30) / ((double)(avail0 - avail1) * 1024.0 / (double)n) : -1);
#undef ROW
    sbx_ready_pool_free(p);
}
