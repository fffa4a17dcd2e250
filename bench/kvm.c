/* kvm.c - the phases that need KVM: VM creation, cold create, restores from
 * file and template (pooled and not, copy and copy-on-write), the first call,
 * call latency and reset after calls dirtying 1, 10 and 100 pages. */
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../guest/bench/content.h"
#include "bench.h"
#include "snapshot/snapshot.h"

#define REPS 5        /* VM-sized operations */
#define CALL_REPS 200 /* calls and resets */
#define POOL_VM_ROW "pool: one VM made ahead (memory mapped, not faulted in)"

struct kvm_ctx {
    struct bench *b;
    int k;
    uint64_t size;
    struct sbx_guest *g;
    struct sbx_template *tpl;
    char path[600];
};

static void must(int rc, const struct sbx_diag *d, const char *what)
{
    if (rc)
        bench_die("%s: %s", what, d->msg);
}

static struct sbx_config config(uint64_t size, enum sbx_mem_mode mode)
{
    return (struct sbx_config){ .sz = sizeof(struct sbx_config), .mem_size = size,
                                .deadline_ms = 60000, .mem_mode = mode };
}

static double call_nop(struct sbx_sandbox *s)
{
    struct sbx_diag d = { 0 };
    double t = bench_now_us();
    must(sbx_sandbox_call(s, "nop", NULL, 0, NULL, &d), &d, "nop");
    return bench_now_us() - t;
}

static void create_and_snapshot(struct kvm_ctx *c)
{
    struct sbx_diag d = { 0 };
    double t[REPS];
    for (int r = 0; r < REPS; r++) {
        struct sbx_vm vm;
        struct sbx_vm_opts lazy = { .memfd = -1 };
        double s = bench_now_us();
        must(sbx_vm_create(&vm, c->size, &lazy, &d), &d, "VM create");
        t[r] = bench_now_us() - s;
        sbx_vm_destroy(&vm);
    }
    bench_set(c->b, "phase: VM create (VM, vCPU, memory slot)", "us", c->k, bench_median(t, REPS));
    for (int r = 0; r < REPS; r++) { /* what a pool pays ahead of requests, per VM */
        struct sbx_pool *pool = NULL;
        double s = bench_now_us();
        must(sbx_pool_create(c->size, 1, &pool, &d), &d, "pool");
        t[r] = bench_now_us() - s;
        sbx_pool_free(pool);
    }
    bench_set(c->b, POOL_VM_ROW, "us", c->k,
              bench_median(t, REPS));
    struct sbx_config cfg = config(c->size, SBX_MEM_DEFAULT);
    struct sbx_sandbox *s = NULL;
    for (int r = 0; r < REPS; r++) {
        sbx_sandbox_destroy(s);
        double st = bench_now_us();
        must(sbx_sandbox_create(c->g, &cfg, &s, &d), &d, "cold create");
        t[r] = bench_now_us() - st;
    }
    bench_set(c->b, "cold create from ELF (VM + load + guest init)", "us", c->k, bench_median(t, REPS));
    struct sbx_snapshot *snap = NULL;
    double st = bench_now_us();
    must(sbx_snapshot_take(s, NULL, &snap, &d), &d, "snapshot");
    must(sbx_snapshot_write(snap, c->path, &d), &d, "snapshot write");
    bench_set(c->b, "snapshot take + write", "us", c->k, bench_now_us() - st);
    sbx_snapshot_free(snap);
    sbx_sandbox_destroy(s);
}

static void restore_from_file(struct kvm_ctx *c)
{
    struct sbx_diag d = { 0 };
    double t[REPS], first[REPS];
    for (int r = 0; r < REPS; r++) {
        struct sbx_snapshot *snap = NULL;
        struct sbx_sandbox *s = NULL;
        double st = bench_now_us();
        must(sbx_snapshot_open(c->path, NULL, &snap, &d), &d, "open");
        must(sbx_sandbox_restore(snap, NULL, &s, &d), &d, "restore");
        t[r] = bench_now_us() - st;
        first[r] = call_nop(s);
        sbx_sandbox_destroy(s);
        sbx_snapshot_free(snap);
    }
    bench_set(c->b, "restore from file (open + VM + decompress + state)", "us", c->k,
              bench_median(t, REPS));
    bench_set(c->b, "first call after file restore", "us", c->k, bench_median(first, REPS));
    double st = bench_now_us();
    must(sbx_template_open(c->path, NULL, &c->tpl, &d), &d, "template");
    bench_set(c->b, "template open", "us", c->k, bench_now_us() - st);
}

static void restore_from_template(struct kvm_ctx *c, enum sbx_mem_mode mode, bool pooled)
{
    static const char *names[2][2] = {
        { "restore from template, copy, unpooled", "restore from template, copy, pooled" },
        { "restore from template, cow, unpooled", "restore from template, cow, pooled" },
    };
    struct sbx_diag d = { 0 };
    struct sbx_config cfg = config(c->size, mode);
    double t[REPS], first[REPS];
    for (int r = 0; r < REPS; r++) {
        struct sbx_pool *pool = NULL;
        if (pooled) /* the pool is filled ahead of the request: not timed */
            must(sbx_pool_create(c->size, 1, &pool, &d), &d, "pool");
        struct sbx_sandbox *s = NULL;
        double st = bench_now_us();
        must(sbx_sandbox_from_template(c->tpl, &cfg, pool, &s, &d), &d, "from template");
        t[r] = bench_now_us() - st;
        first[r] = call_nop(s);
        sbx_sandbox_destroy(s);
        sbx_pool_free(pool);
    }
    const char *name = names[mode == SBX_MEM_COW][pooled];
    bench_set(c->b, name, "us", c->k, bench_median(t, REPS));
    char fc[96];
    snprintf(fc, sizeof fc, "  first call after it (%s%s)", mode == SBX_MEM_COW ? "cow" : "copy",
             pooled ? ", pooled" : "");
    bench_set(c->b, fc, "us", c->k, bench_median(first, REPS));
}

/* Round 1's reset: no MSRs, debug registers, events or TSC. */
static void load_registers_only(struct sbx_vm *vm, const struct sbx_vcpu_state *st)
{
    static uint32_t xs[SBX_XSAVE_MAX / 4]; /* KVM may read more than struct kvm_xsave */
    memcpy(xs, st->xsave, st->xsave_size);
    if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &st->sregs) < 0 ||
        ioctl(vm->vcpu_fd, KVM_SET_XCRS, &st->xcrs) < 0 ||
        ioctl(vm->vcpu_fd, KVM_SET_XSAVE, xs) < 0 || ioctl(vm->vcpu_fd, KVM_SET_REGS, &st->regs) < 0)
        bench_die("registers-only state set failed");
}

static void calls_and_resets(struct kvm_ctx *c, enum sbx_mem_mode mode)
{
    struct sbx_diag d = { 0 };
    struct sbx_config cfg = config(c->size, mode);
    struct sbx_sandbox *s = NULL;
    must(sbx_sandbox_from_template(c->tpl, &cfg, NULL, &s, &d), &d, "from template");
    static double t[CALL_REPS];
    const char *m = mode == SBX_MEM_COW ? "cow" : "copy";
    char name[96];
    if (mode == SBX_MEM_COPY) {
        for (int r = 0; r < CALL_REPS; r++)
            t[r] = call_nop(s);
        bench_set(c->b, "call latency (nop, warm)", "us", c->k, bench_median(t, CALL_REPS));
        struct sbx_vcpu_state st;
        must(sbx_vcpu_save(&s->vm, &st, &d), &d, "save");
        for (int r = 0; r < CALL_REPS; r++) {
            double s0 = bench_now_us();
            must(sbx_vcpu_load(&s->vm, &st, &d), &d, "state set");
            t[r] = bench_now_us() - s0;
        }
        bench_set(c->b, "phase: vCPU state set", "us", c->k, bench_median(t, CALL_REPS));
        /* what the previous round put back, for the cost of isolation in this run */
        for (int r = 0; r < CALL_REPS; r++) {
            double s0 = bench_now_us();
            load_registers_only(&s->vm, &st);
            t[r] = bench_now_us() - s0;
        }
        bench_set(c->b, "  ref: registers, sregs, XCRs, XSAVE only (round 1's reset)", "us", c->k,
                  bench_median(t, CALL_REPS));
    }
    static const uint64_t pages[] = { 1, 10, 100 };
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        struct sbx_value arg = { .type = SBX_T_U64, .u.u64 = pages[i] };
        for (int r = 0; r < CALL_REPS; r++) {
            must(sbx_sandbox_call(s, "dirty", &arg, 1, NULL, &d), &d, "dirty");
            double s0 = bench_now_us();
            must(sbx_sandbox_reset(s, &d), &d, "reset");
            t[r] = bench_now_us() - s0;
        }
        snprintf(name, sizeof name, "reset after a call dirtying %llu pages (%s)",
                 (unsigned long long)pages[i], m);
        bench_set(c->b, name, "us", c->k, bench_median(t, CALL_REPS));
    }
    for (int r = 0; r < CALL_REPS; r++) {
        must(sbx_sandbox_reset(s, &d), &d, "reset");
        t[r] = call_nop(s);
    }
    snprintf(name, sizeof name, "call right after a reset (%s)", m);
    bench_set(c->b, name, "us", c->k, bench_median(t, CALL_REPS));
    sbx_sandbox_destroy(s);
}

static void ratios(struct bench *b, int k)
{
    double pooled = bench_get(b, "restore from template, copy, pooled", k);
    bench_set(b, "ratio: cold create / template restore (copy, pooled)", "x", k,
              bench_get(b, "cold create from ELF (VM + load + guest init)", k) / pooled);
    bench_set(b, "ratio: template restore (copy, pooled) / same at 16 MiB", "x", k,
              pooled / bench_get(b, "restore from template, copy, pooled", 1));
    bench_set(b, "ratio: pooled VM made / same at 16 MiB", "x", k,
              bench_get(b, POOL_VM_ROW, k) / bench_get(b, POOL_VM_ROW, 1));
    bench_set(b, "ratio: snapshot take + write / same at 16 MiB", "x", k,
              bench_get(b, "snapshot take + write", k) / bench_get(b, "snapshot take + write", 1));
    bench_set(b, "ratio: complete vCPU state set / registers only", "x", k,
              bench_get(b, "phase: vCPU state set", k) /
                  bench_get(b, "  ref: registers, sregs, XCRs, XSAVE only (round 1's reset)", k));
    bench_set(b, "ratio: reset 10 pages (copy) / template restore unpooled", "x", k,
              bench_get(b, "reset after a call dirtying 10 pages (copy)", k) /
                  bench_get(b, "restore from template, copy, unpooled", k));
}

int bench_kvm(struct bench *b, const char *tmpdir)
{
    char elf[600];
    snprintf(elf, sizeof elf, "%s/bench.elf", b->guest_dir);
    struct sbx_diag d = { 0 };
    struct kvm_ctx c = { .b = b };
    must(sbx_guest_load(elf, NULL, &c.g, &d), &d, "load");
    for (int k = 0; k < BENCH_NSIZES; k++) {
        c.k = k;
        c.size = bench_sizes_mib[k] << 20;
        snprintf(c.path, sizeof c.path, "%s/bench-%d.snap", tmpdir, k);
        create_and_snapshot(&c);
        restore_from_file(&c);
        restore_from_template(&c, SBX_MEM_COPY, false);
        restore_from_template(&c, SBX_MEM_COPY, true);
        restore_from_template(&c, SBX_MEM_COW, false);
        restore_from_template(&c, SBX_MEM_COW, true);
        calls_and_resets(&c, SBX_MEM_COPY);
        calls_and_resets(&c, SBX_MEM_COW);
        bench_ready(b, k, c.tpl);
        sbx_template_free(c.tpl);
        c.tpl = NULL;
        unlink(c.path);
        fprintf(stderr, "bench: kvm %llu MiB done\n", (unsigned long long)bench_sizes_mib[k]);
    }
    for (int k = 0; k < BENCH_NSIZES; k++)
        ratios(b, k);
    sbx_guest_free(c.g);
    return bench_guests(b);
}
