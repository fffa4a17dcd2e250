/* metrics.c - counters kept without locks, and GET /metrics in Prometheus's
 * text exposition format (version 0.0.4). Debian has no C client library for
 * it; the format is lines of "name{label="value"} number". */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "serve/serve.h"

/* Upper bounds of the latency buckets, in seconds. */
static const double bucket_le[SERVE_NBUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

void serve_count_response(struct serve *s, unsigned status)
{
    if (status < 600)
        atomic_fetch_add(&s->m.by_status[status], 1);
}

void serve_count_error(struct serve *s, enum serve_kind k)
{
    if ((unsigned)k < KIND_COUNT_)
        atomic_fetch_add(&s->m.errors[k], 1);
}

void serve_observe_call(struct serve *s, double ms)
{
    size_t b = 0;
    while (b < SERVE_NBUCKETS && ms / 1000.0 > bucket_le[b])
        b++;
    atomic_fetch_add(&s->m.bucket[b], 1);
    atomic_fetch_add(&s->m.latency_us_sum, (uint64_t)(ms * 1000.0));
    atomic_fetch_add(&s->m.calls, 1);
}

static void head(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static uint64_t resident_bytes(void)
{
    unsigned long pages_total = 0, pages_resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f && fscanf(f, "%lu %lu", &pages_total, &pages_resident) != 2)
        pages_resident = 0;
    if (f)
        fclose(f);
    return (uint64_t)pages_resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void http_metrics(FILE *f, struct serve *s)
{
    head(f, "snapbox_http_responses_total", "counter", "HTTP responses sent, by status.");
    for (unsigned st = 100; st < 600; st++) {
        uint64_t n = atomic_load(&s->m.by_status[st]);
        if (n)
            fprintf(f, "snapbox_http_responses_total{status=\"%u\"} %llu\n", st,
                    (unsigned long long)n);
    }
    head(f, "snapbox_errors_total", "counter", "Requests that failed, by kind of error.");
    for (int k = 0; k < KIND_COUNT_; k++)
        fprintf(f, "snapbox_errors_total{kind=\"%s\"} %llu\n", serve_kind_name((enum serve_kind)k),
                (unsigned long long)atomic_load(&s->m.errors[k]));
    head(f, "snapbox_call_duration_seconds", "histogram",
         "Calls queued to a worker, from the request's arrival to its answer.");
    uint64_t cum = 0;
    for (size_t b = 0; b <= SERVE_NBUCKETS; b++) {
        cum += atomic_load(&s->m.bucket[b]);
        if (b < SERVE_NBUCKETS)
            fprintf(f, "snapbox_call_duration_seconds_bucket{le=\"%g\"} %llu\n", bucket_le[b],
                    (unsigned long long)cum);
        else
            fprintf(f, "snapbox_call_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                    (unsigned long long)cum);
    }
    fprintf(f, "snapbox_call_duration_seconds_sum %.6f\n",
            (double)atomic_load(&s->m.latency_us_sum) / 1e6);
    fprintf(f, "snapbox_call_duration_seconds_count %llu\n", (unsigned long long)cum);
    head(f, "snapbox_queue_length", "gauge", "Calls waiting for a worker.");
    fprintf(f, "snapbox_queue_length %llu\n", (unsigned long long)atomic_load(&s->m.queued));
    head(f, "snapbox_queue_capacity", "gauge", "Calls that may wait (--queue).");
    fprintf(f, "snapbox_queue_capacity %zu\n", s->o.queue);
    head(f, "snapbox_workers", "gauge", "Worker threads (--workers).");
    fprintf(f, "snapbox_workers %zu\n", s->o.workers);
    head(f, "snapbox_workers_busy", "gauge", "Workers running a call.");
    fprintf(f, "snapbox_workers_busy %llu\n", (unsigned long long)atomic_load(&s->m.running));
    head(f, "process_resident_memory_bytes", "gauge", "Resident memory of the server process.");
    fprintf(f, "process_resident_memory_bytes %llu\n", (unsigned long long)resident_bytes());
}

/* One metric per field of sbx_ready_pool_stats, labelled by snapshot. */
#define POOL_FIELDS(X)                                                                         \
    X("snapbox_pool_target", "gauge", "Sandboxes the pool keeps, ready or taken.", target)     \
    X("snapbox_pool_ready", "gauge", "Sandboxes ready to take.", ready)                        \
    X("snapbox_pool_taken", "gauge", "Sandboxes taken by calls.", taken)                       \
    X("snapbox_pool_resetting", "gauge", "Released sandboxes waiting for their reset.", resetting) \
    X("snapbox_pool_takes_total", "counter", "Sandboxes handed out.", takes)                   \
    X("snapbox_pool_misses_total", "counter", "Takes that found none ready.", misses)          \
    X("snapbox_pool_resets_total", "counter", "Resets of released sandboxes.", resets)         \
    X("snapbox_pool_replaced_total", "counter", "Sandboxes destroyed: their reset failed.",     \
      replaced)                                                                                \
    X("snapbox_pool_refills_total", "counter", "Sandboxes the pool's thread made.", refills)    \
    X("snapbox_pool_retired_total", "counter", "Sandboxes a burst made beyond the target, "      \
      "destroyed when they came back.", retired)                                                \
    X("snapbox_pool_refill_failures_total", "counter", "Refills that failed.", refill_failures) \
    X("snapbox_pool_working_set_pages", "gauge", "Pages of the recorded working set.",         \
      working_set_pages)                                                                       \
    X("snapbox_pool_ready_resident_bytes", "gauge", "Guest memory of the ready sandboxes "     \
      "resident in this process.", ready_resident)                                             \
    X("snapbox_template_resident_bytes", "gauge", "Resident memory of the template they "      \
      "share.", template_resident)

static void pool_metrics(FILE *f, struct serve *s)
{
    struct sbx_ready_pool_stats st[s->ntargets ? s->ntargets : 1];
    for (size_t i = 0; i < s->ntargets; i++) {
        st[i] = (struct sbx_ready_pool_stats){ .sz = sizeof st[i] };
        if (s->targets[i].ready)
            sbx_ready_pool_stats(s->targets[i].ready, &st[i], NULL);
    }
#define X(metric, type, help, field)                                                           \
    head(f, metric, type, help);                                                               \
    for (size_t i = 0; i < s->ntargets; i++)                                                   \
        if (s->targets[i].ready)                                                               \
            fprintf(f, metric "{snapshot=\"%s\"} %llu\n", s->targets[i].name,                    \
                    (unsigned long long)st[i].field);
    if (s->o.strategy == STRAT_REUSE) {
        POOL_FIELDS(X)
    }
#undef X
    head(f, "snapbox_blank_pool_available", "gauge", "Blank VMs ready (strategy restore).");
    for (size_t i = 0; i < s->ntargets; i++)
        if (s->targets[i].blank)
            fprintf(f, "snapbox_blank_pool_available{snapshot=\"%s\"} %zu\n", s->targets[i].name,
                    sbx_pool_available(s->targets[i].blank));
    head(f, "snapbox_calls_total", "counter", "Calls queued, by snapshot.");
    for (size_t i = 0; i < s->ntargets; i++)
        fprintf(f, "snapbox_calls_total{snapshot=\"%s\"} %llu\n", s->targets[i].name,
                (unsigned long long)atomic_load(&s->targets[i].requests));
}

char *serve_metrics_text(struct serve *s)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    http_metrics(f, s);
    pool_metrics(f, s);
    if (fclose(f)) {
        free(text);
        return NULL;
    }
    return text;
}
