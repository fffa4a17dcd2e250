/* guests.c - real guests, not the synthetic bench guest: the demo guest and
 * the rules example (2000 regcomp rules compiled at init). Cold create
 * against a pooled restore from the template, the first call after it with
 * the faults and exits it pays (host page faults; KVM's own counters of exits
 * and nested-paging faults), warm calls and resets. Each guest's figures
 * sit in the column of its memory size. */
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"
#include "snapshot/snapshot.h"

#define REPS 5
#define CALL_REPS 50

struct real_guest {
    const char *name, *elf, *func, *arg;
    int k; /* column: guest memory size */
};

static const struct real_guest guests[] = {
    { "demo", "demo.elf", "upper", "hello, request", 1 },
    { "rules", "rules.elf", "match", "/api/v3/users/7?p1=123&q=select t2", 2 },
};

static void must(int rc, const struct sbx_diag *d, const char *what)
{
    if (rc)
        bench_die("%s: %s", what, d->msg);
}

static long minor_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return ru.ru_minflt;
}

/* A counter of KVM's binary statistics for the vCPU ("exits", "pf_fixed"),
 * or -1 where the kernel has none (before 5.14). */
static double vcpu_stat(int vcpu_fd, const char *name)
{
    int fd = ioctl(vcpu_fd, KVM_GET_STATS_FD, NULL);
    if (fd < 0)
        return -1;
    struct kvm_stats_header h;
    double v = -1;
    char *descs = NULL;
    if (pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
        goto out;
    size_t each = sizeof(struct kvm_stats_desc) + h.name_size;
    if (!(descs = malloc(each * h.num_desc)) ||
        pread(fd, descs, each * h.num_desc, h.desc_offset) != (ssize_t)(each * h.num_desc))
        goto out;
    for (uint32_t i = 0; i < h.num_desc; i++) {
        const struct kvm_stats_desc *d = (const void *)(descs + i * each);
        uint64_t x;
        if (strncmp(d->name, name, h.name_size) == 0 &&
            pread(fd, &x, sizeof x, h.data_offset + d->offset) == (ssize_t)sizeof x)
            v = (double)x;
    }
out:
    free(descs);
    close(fd);
    return v;
}

static void row(struct bench *b, const struct real_guest *g, const char *what, const char *unit,
                double v)
{
    char name[80];
    snprintf(name, sizeof name, "%s: %s", g->name, what);
    bench_set(b, name, unit, g->k, v);
}

static double call_once(struct sbx_sandbox *s, const struct real_guest *g)
{
    struct sbx_value a = { .type = SBX_T_STR, .u.buf = { g->arg, strlen(g->arg) } };
    struct sbx_diag d = { 0 };
    double t = bench_now_us();
    must(sbx_sandbox_call(s, g->func, &a, 1, NULL, &d), &d, g->func);
    return bench_now_us() - t;
}

static struct sbx_template *cold_creates(struct bench *b, const struct real_guest *g,
                                         const struct sbx_config *cfg)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", b->guest_dir, g->elf);
    struct sbx_diag d = { 0 };
    struct sbx_guest *elf = NULL;
    struct sbx_sandbox *s = NULL;
    double t[REPS];
    must(sbx_guest_load(path, NULL, &elf, &d), &d, path);
    for (int r = 0; r < REPS; r++) {
        double st = bench_now_us();
        must(sbx_sandbox_create(elf, cfg, &s, &d), &d, "create");
        t[r] = bench_now_us() - st;
        if (r < REPS - 1)
            sbx_sandbox_destroy(s);
    }
    row(b, g, "cold create (load + init)", "us", bench_median(t, REPS));
    struct sbx_snapshot *snap = NULL;
    struct sbx_template *tpl = NULL;
    must(sbx_snapshot_take(s, NULL, &snap, &d), &d, "snapshot");
    must(sbx_template_from_snapshot(snap, &tpl, &d), &d, "template");
    sbx_snapshot_free(snap);
    sbx_sandbox_destroy(s);
    sbx_guest_free(elf);
    return tpl;
}

static void one_guest(struct bench *b, const struct real_guest *g)
{
    SBX_OPTS(sbx_config, cfg, .mem_size = bench_sizes_mib[g->k] << 20, .deadline_ms = 120000);
    struct sbx_template *tpl = cold_creates(b, g, &cfg);
    struct sbx_diag d = { 0 };
    double t[CALL_REPS], first[REPS], faults[REPS], exits[REPS], npf[REPS];
    struct sbx_sandbox *s = NULL;
    for (int r = 0; r < REPS; r++) {
        struct sbx_pool *pool = NULL;
        must(sbx_pool_create(cfg.mem_size, 1, &pool, &d), &d, "pool");
        double st = bench_now_us();
        must(sbx_sandbox_from_template(tpl, &cfg, pool, &s, &d), &d, "restore");
        t[r] = bench_now_us() - st;
        long f0 = minor_faults();
        double e0 = vcpu_stat(s->vm.vcpu_fd, "exits"), p0 = vcpu_stat(s->vm.vcpu_fd, "pf_fixed");
        first[r] = call_once(s, g);
        faults[r] = (double)(minor_faults() - f0);
        exits[r] = e0 < 0 ? -1 : vcpu_stat(s->vm.vcpu_fd, "exits") - e0;
        npf[r] = p0 < 0 ? -1 : vcpu_stat(s->vm.vcpu_fd, "pf_fixed") - p0;
        sbx_pool_free(pool);
        if (r < REPS - 1)
            sbx_sandbox_destroy(s);
    }
    double restore = bench_median(t, REPS);
    row(b, g, "restore from template (copy, pooled)", "us", restore);
    row(b, g, "first call after it", "us", bench_median(first, REPS));
    row(b, g, "host page faults in that first call", "n", bench_median(faults, REPS));
    row(b, g, "KVM exits in that first call", "n", bench_median(exits, REPS));
    row(b, g, "nested-paging faults KVM fixed in it", "n", bench_median(npf, REPS));
    row(b, g, "ratio: cold create / pooled restore", "x",
        bench_get(b, strcmp(g->name, "demo") ? "rules: cold create (load + init)"
                                             : "demo: cold create (load + init)", g->k) / restore);
    for (int r = 0; r < CALL_REPS; r++)
        t[r] = call_once(s, g);
    row(b, g, "warm call", "us", bench_median(t, CALL_REPS));
    double e0 = vcpu_stat(s->vm.vcpu_fd, "exits"), p0 = vcpu_stat(s->vm.vcpu_fd, "pf_fixed");
    call_once(s, g);
    row(b, g, "KVM exits in a warm call", "n", e0 < 0 ? -1 : vcpu_stat(s->vm.vcpu_fd, "exits") - e0);
    row(b, g, "nested-paging faults in a warm call", "n",
        p0 < 0 ? -1 : vcpu_stat(s->vm.vcpu_fd, "pf_fixed") - p0);
    for (int r = 0; r < CALL_REPS; r++) {
        call_once(s, g);
        double st = bench_now_us();
        must(sbx_sandbox_reset(s, &d), &d, "reset");
        t[r] = bench_now_us() - st;
    }
    row(b, g, "reset after that call", "us", bench_median(t, CALL_REPS));
    sbx_sandbox_destroy(s);
    bench_density(b, g->name, g->k, tpl, g->func, g->arg);
    sbx_template_free(tpl);
}

int bench_guests(struct bench *b)
{
    for (size_t i = 0; i < sizeof guests / sizeof guests[0]; i++) {
        one_guest(b, &guests[i]);
        fprintf(stderr, "bench: guest %s done\n", guests[i].name);
    }
    return 0;
}
