/* main.c - `make bench`: snapbox's restore paths against their physical
 * references. usage: bench host|kvm GUEST_DIR TMPDIR [JSON_OUT]
 * host: file and template phases, natively. kvm: VM create, restore, reset
 * and calls, against real KVM (scripts/bench.sh runs it in the KVM test VM
 * where the machine has no /dev/kvm). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

const uint64_t bench_sizes_mib[BENCH_NSIZES] = { 4, 16, 64, 256 };

_Noreturn void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static struct bench_row *find_row(const struct bench *b, const char *name)
{
    for (int i = 0; i < b->nrows; i++)
        if (strcmp(b->rows[i].name, name) == 0)
            return (struct bench_row *)&b->rows[i];
    return NULL;
}

void bench_set(struct bench *b, const char *name, const char *unit, int k, double value)
{
    struct bench_row *r = find_row(b, name);
    if (!r) {
        if (b->nrows == BENCH_MAX_ROWS)
            bench_die("too many result rows");
        r = &b->rows[b->nrows++];
        snprintf(r->name, sizeof r->name, "%s", name);
        snprintf(r->unit, sizeof r->unit, "%s", unit);
        for (int i = 0; i < BENCH_NSIZES; i++)
            r->v[i] = -1;
    }
    r->v[k] = value;
}

double bench_get(const struct bench *b, const char *name, int k)
{
    const struct bench_row *r = find_row(b, name);
    if (!r)
        bench_die("no result row '%s'", name);
    return r->v[k];
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_print(const struct bench *b, FILE *out)
{
    fprintf(out, "\n%s (%s)\n%-62s", b->part, b->where, "guest memory (MiB)");
    for (int k = 0; k < BENCH_NSIZES; k++)
        fprintf(out, " %11llu", (unsigned long long)bench_sizes_mib[k]);
    fputc('\n', out);
    for (int i = 0; i < b->nrows; i++) {
        const struct bench_row *r = &b->rows[i];
        char label[96];
        snprintf(label, sizeof label, "%s [%s]", r->name, r->unit);
        fprintf(out, "%-62s", label);
        for (int k = 0; k < BENCH_NSIZES; k++) {
            if (r->v[k] < 0)
                fprintf(out, " %11s", "-");
            else if (strcmp(r->unit, "bytes") == 0)
                fprintf(out, " %11.0f", r->v[k]);
            else if (strcmp(r->unit, "x") == 0)
                fprintf(out, " %11.3f", r->v[k]);
            else
                fprintf(out, " %11.2f", r->v[k]);
        }
        fputc('\n', out);
    }
}

void bench_json(const struct bench *b, FILE *out)
{
    fprintf(out, "{\"part\": \"%s\", \"where\": \"%s\", \"sizes_mib\": [", b->part, b->where);
    for (int k = 0; k < BENCH_NSIZES; k++)
        fprintf(out, "%s%llu", k ? ", " : "", (unsigned long long)bench_sizes_mib[k]);
    fprintf(out, "], \"rows\": [");
    for (int i = 0; i < b->nrows; i++) {
        const struct bench_row *r = &b->rows[i];
        fprintf(out, "%s{\"name\": \"%s\", \"unit\": \"%s\", \"values\": [", i ? ", " : "",
                r->name, r->unit);
        for (int k = 0; k < BENCH_NSIZES; k++) {
            if (r->v[k] < 0)
                fprintf(out, "%snull", k ? ", " : "");
            else
                fprintf(out, "%s%.3f", k ? ", " : "", r->v[k]);
        }
        fprintf(out, "]}");
    }
    fprintf(out, "]}\n");
}

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[1], "host") && strcmp(argv[1], "kvm"))) {
        fprintf(stderr, "usage: bench host|kvm GUEST_DIR TMPDIR [JSON_OUT|- [WHERE]]\n");
        return 2;
    }
    static struct bench b;
    b.part = argv[1];
    b.guest_dir = argv[2];
    b.where = argc > 5 ? argv[5] : "native";
    int rc = strcmp(argv[1], "host") == 0 ? bench_host(&b, argv[3]) : bench_kvm(&b, argv[3]);
    if (rc)
        return rc;
    bench_print(&b, stdout);
    if (argc > 4) {
        FILE *f = strcmp(argv[4], "-") == 0 ? stdout : fopen(argv[4], "w");
        if (!f)
            bench_die("cannot write %s", argv[4]);
        if (f == stdout)
            fputs("BENCH_JSON ", f);
        bench_json(&b, f);
        if (f != stdout)
            fclose(f);
    }
    return 0;
}
