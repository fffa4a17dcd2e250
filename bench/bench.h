/* bench.h - the benchmark harness: timing, result rows, table and JSON. */
#ifndef SBX_BENCH_H
#define SBX_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define BENCH_NSIZES 4
#define BENCH_MAX_ROWS 128
extern const uint64_t bench_sizes_mib[BENCH_NSIZES];

struct bench_row {
    char name[80];
    char unit[8];             /* "us", "bytes", "x", "n" (a count) */
    double v[BENCH_NSIZES];   /* one per guest memory size; < 0: not measured */
};

struct bench {
    const char *part;         /* "host" or "kvm" */
    const char *where;        /* how the figures were taken */
    const char *guest_dir;
    struct bench_row rows[BENCH_MAX_ROWS];
    int nrows;
};

static inline double bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Record value for row name (created on first use) at size index k. */
void bench_set(struct bench *b, const char *name, const char *unit, int k, double value);
double bench_get(const struct bench *b, const char *name, int k);
double bench_median(double *v, int n);
void bench_print(const struct bench *b, FILE *out);
void bench_json(const struct bench *b, FILE *out);

/* The guest memory image the bench guest has after init, built without KVM. */
struct sbx_guest;
int bench_host(struct bench *b, const char *tmpdir);
int bench_kvm(struct bench *b, const char *tmpdir);
/* guests.c: the demo guest and the rules example, in the KVM part. */
int bench_guests(struct bench *b);
/* ready.c: ready pools of a template; density of a real guest's ready sandboxes. */
struct sbx_template;
void bench_ready(struct bench *b, int k, const struct sbx_template *t);
void bench_density(struct bench *b, const char *guest, int k, const struct sbx_template *t,
                   const char *func, const char *arg);

/* Stop the benchmark with a message: it is a program, not the library. */
_Noreturn void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
