/* host.c - host-side phases, natively: the file path (read, header check,
 * checksums, decompression) and the template path (memory fill), each beside
 * its physical reference on the same data, and the alternative of an
 * uncompressed memory file mapped MAP_PRIVATE. */
#include <fcntl.h>
#include <lz4.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "../guest/bench/content.h"
#include "bench.h"
#include "snapshot/snapshot.h"

#define REPS 21

static uint8_t *map_faulted(uint64_t size)
{
    uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                      -1, 0);
    if (p == MAP_FAILED)
        bench_die("cannot map %llu bytes", (unsigned long long)size);
    return p;
}

/* The bench guest's memory after init: segments, tables, exchange header, content. */
static void build_image(const char *guest_dir, uint8_t *mem, uint64_t size)
{
    char path[600];
    snprintf(path, sizeof path, "%s/bench.elf", guest_dir);
    struct sbx_guest *g = NULL;
    struct sbx_diag d = { 0 };
    if (sbx_guest_load(path, NULL, &g, &d))
        bench_die("%s", d.msg);
    struct sbx_vm vm = { .mem = mem, .mem_size = size, .kvm_fd = -1, .vm_fd = -1, .vcpu_fd = -1 };
    if (sbx_mem_prepare(&vm, g, 0, 0, &d))
        bench_die("%s", d.msg);
    for (unsigned p = 0; p < BENCH_FILL_PAGES + BENCH_DIRTY_PAGES; p++)
        bench_fill_page(mem + BENCH_FILL_GPA + p * SBX_PAGE_SIZE, p);
    sbx_guest_free(g);
}

static struct sbx_snapshot *encode(const uint8_t *mem, uint64_t size)
{
    static struct sbx_vcpu_state st = { .xsave_size = 4096 };
    static const struct sbx_cpu_facts cpu = { .vendor = "bench-cpu   " };
    static const struct sbx_func fn = { .name = "nop", .ret_type = SBX_T_I32 };
    struct sbx_snap_input in = { .mem = mem, .mem_size = size, .state = &st, .cpu = &cpu,
                                 .funcs = &fn, .nfuncs = 1 };
    struct sbx_snapshot *snap = calloc(1, sizeof *snap);
    struct sbx_diag d = { 0 };
    if (!snap || !(snap->path = strdup("(bench)")) || sbx_snap_encode(&in, snap, &d))
        bench_die("encode: %s", d.msg);
    return snap;
}

/* Time fn(arg) REPS times; the median in microseconds. */
#define TIME_MEDIAN(out, stmt)                                  \
    do {                                                        \
        double t_[REPS];                                        \
        for (int r_ = 0; r_ < REPS; r_++) {                     \
            double s_ = bench_now_us();                         \
            stmt;                                               \
            t_[r_] = bench_now_us() - s_;                       \
        }                                                       \
        (out) = bench_median(t_, REPS);                         \
    } while (0)

static void decode_all(const struct sbx_snapshot *snap, uint8_t *dst)
{
    struct sbx_diag d = { 0 };
    for (uint32_t i = 0; i < snap->hdr->nchunks; i++)
        if (sbx_snap_decode_chunk(snap, i, dst + snap->index[i].gpa, &d))
            bench_die("decode: %s", d.msg);
}

static void open_and_decode(const char *path, uint8_t *dst)
{
    struct sbx_snapshot *snap = NULL;
    struct sbx_diag d = { 0 };
    if (sbx_snapshot_open(path, NULL, &snap, &d))
        bench_die("%s", d.msg);
    decode_all(snap, dst);
    sbx_snapshot_free(snap);
}

/* The physical floor of a file restore: LZ4 and XXH3 on the same chunks, no checks. */
static uint64_t reference_lz4_xxh3(const struct sbx_snapshot *snap, uint8_t *dst, bool lz4, bool xxh)
{
    uint64_t acc = 0;
    for (uint32_t i = 0; i < snap->hdr->nchunks; i++) {
        const struct sbx_snap_chunk *c = &snap->index[i];
        if (xxh)
            acc += XXH3_64bits(snap->image + c->offset, c->comp_size);
        if (lz4)
            acc += (uint64_t)LZ4_decompress_safe((const char *)snap->image + c->offset,
                                                 (char *)dst + c->gpa, (int)c->comp_size,
                                                 (int)c->raw_size);
    }
    return acc;
}

static void phases_file(struct bench *b, int k, const char *path, const struct sbx_snapshot *snap,
                        uint8_t *dst)
{
    double t;
    struct sbx_diag d = { 0 };
    TIME_MEDIAN(t, sbx_snap_check_prefix(snap->image, snap->size, path, &d);
                sbx_snap_check_header(snap->hdr, snap->size, path, &d));
    bench_set(b, "phase: header check", "us", k, t);
    TIME_MEDIAN(t, sbx_snap_check_index(snap, &d); sbx_snap_check_chunks(snap, &d));
    bench_set(b, "phase: checksums (index + every chunk)", "us", k, t);
    TIME_MEDIAN(t, decode_all(snap, dst));
    bench_set(b, "phase: decompress into faulted memory", "us", k, t);
    TIME_MEDIAN(t, open_and_decode(path, dst));
    bench_set(b, "restore from file, host side (open+check+decompress)", "us", k, t);
    volatile uint64_t sink = 0;
    TIME_MEDIAN(t, sink += reference_lz4_xxh3(snap, dst, true, true));
    bench_set(b, "ref: LZ4_decompress_safe + XXH3, same chunks", "us", k, t);
    TIME_MEDIAN(t, sink += reference_lz4_xxh3(snap, dst, true, false));
    bench_set(b, "ref: LZ4_decompress_safe only", "us", k, t);
    TIME_MEDIAN(t, sink += reference_lz4_xxh3(snap, dst, false, true));
    bench_set(b, "ref: XXH3 of the compressed bytes only", "us", k, t);
    TIME_MEDIAN(t, uint8_t *fresh = mmap(NULL, snap->hdr->mem_size, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                decode_all(snap, fresh); munmap(fresh, snap->hdr->mem_size));
    bench_set(b, "decompress into fresh (unfaulted) memory", "us", k, t);
    (void)sink;
}

static void phases_template(struct bench *b, int k, const char *path, const uint8_t *image,
                            uint8_t *dst)
{
    double t;
    struct sbx_template *tpl = NULL;
    struct sbx_diag d = { 0 };
    double opens[REPS];
    for (int r = 0; r < REPS; r++) { /* the free of the previous one is not timed */
        sbx_template_free(tpl);
        double s0 = bench_now_us();
        if (sbx_template_open(path, NULL, &tpl, &d))
            bench_die("%s", d.msg);
        opens[r] = bench_now_us() - s0;
    }
    bench_set(b, "template open (read, check, decode, seal)", "us", k, bench_median(opens, REPS));
    TIME_MEDIAN(t, for (uint32_t r = 0; r < tpl->nruns; r++)
                       memcpy(dst + tpl->runs[r].gpa, tpl->mem + tpl->runs[r].gpa, tpl->runs[r].len));
    bench_set(b, "phase: memory fill from template (copy mode)", "us", k, t);
    uint64_t nz = tpl->hdr->h.nonzero_pages * SBX_PAGE_SIZE;
    uint8_t *packed = malloc(nz);
    uint64_t off = 0;
    for (uint32_t r = 0; r < tpl->nruns; r++) {
        memcpy(packed + off, image + tpl->runs[r].gpa, tpl->runs[r].len);
        off += tpl->runs[r].len;
    }
    TIME_MEDIAN(t, off = 0; for (uint32_t r = 0; r < tpl->nruns; r++) {
        memcpy(dst + tpl->runs[r].gpa, packed + off, tpl->runs[r].len);
        off += tpl->runs[r].len;
    });
    bench_set(b, "ref: memcpy of the non-zero pages", "us", k, t);
    free(packed);
    sbx_template_free(tpl);
}

/* What Firecracker-style snapshots do: an uncompressed memory file, mapped
 * privately; the restore pays a page fault for every page the guest uses. */
static void alternative_raw_file(struct bench *b, int k, const char *dir, const uint8_t *image,
                                 uint64_t size, const struct sbx_snapshot *snap)
{
    char path[600];
    snprintf(path, sizeof path, "%s/raw-%llu.mem", dir, (unsigned long long)size >> 20);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
        bench_die("cannot write %s", path);
    for (uint32_t i = 0; i < snap->hdr->nchunks; i++) /* sparse: zero pages stay holes */
        if (pwrite(fd, image + snap->index[i].gpa, snap->index[i].raw_size,
                   (off_t)snap->index[i].gpa) < 0)
            bench_die("cannot write %s", path);
    close(fd);
    double t;
    volatile uint8_t sink = 0;
    TIME_MEDIAN(t, int f = open(path, O_RDONLY);
                uint8_t *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, f, 0);
                for (uint32_t i = 0; i < snap->hdr->nchunks; i++)
                    for (uint64_t o = 0; o < snap->index[i].raw_size; o += SBX_PAGE_SIZE)
                        sink += m[snap->index[i].gpa + o];
                munmap(m, size); close(f));
    bench_set(b, "alt: raw memory file, mmap MAP_PRIVATE + fault used pages", "us", k, t);
    bench_set(b, "alt: raw memory file size", "bytes", k, (double)size);
    (void)sink;
    unlink(path);
}

static double lz4_cli_size(const char *dir, const uint8_t *image, const struct sbx_snapshot *snap)
{
    char path[600], cmd[1400];
    snprintf(path, sizeof path, "%s/nonzero.bin", dir);
    FILE *f = fopen(path, "wb");
    if (!f)
        bench_die("cannot write %s", path);
    for (uint32_t i = 0; i < snap->hdr->nchunks; i++)
        fwrite(image + snap->index[i].gpa, 1, snap->index[i].raw_size, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "lz4 -1 -q -c '%s' | wc -c", path);
    FILE *p = popen(cmd, "r");
    double n = -1;
    if (!p || fscanf(p, "%lf", &n) != 1 || pclose(p) != 0 || n <= 0)
        bench_die("`lz4 -1` failed (is the lz4 package installed?)");
    unlink(path);
    return n;
}

/* What each call pays for its deadline: arming and disarming the timer it
 * keeps (src/vcpu/deadline.c), beside making and deleting one per call. */
static void timer_once(void)
{
    timer_t tm;
    struct sigevent sev = { .sigev_notify = SIGEV_NONE };
    struct itimerspec its = { .it_value = { 1000, 0 } };
    if (timer_create(CLOCK_MONOTONIC, &sev, &tm) == 0) {
        timer_settime(tm, 0, &its, NULL);
        timer_delete(tm);
    }
}

static void deadline_timer(struct bench *b, int k)
{
    double t;
    int signo = SIGRTMIN + 1;
    struct sbx_deadline dl = { 0 };
    struct sbx_diag d = { 0 };
    /* No vCPU here: the KVM_RUN signal mask counts as set already, as it is
     * from a sandbox's second call on. */
    sigset_t run;
    pthread_sigmask(SIG_SETMASK, NULL, &run);
    sigdelset(&run, signo);
    memcpy(&dl.run_mask, &run, sizeof dl.run_mask);
    dl.run_mask_set = true;
    struct sbx_vm no_vm = { .vcpu_fd = -1 };
    sigset_t saved;
    TIME_MEDIAN(t, if (sbx_deadline_begin(&dl, &no_vm, 1000, signo, &saved, &d))
                       bench_die("%s", d.msg);
                sbx_deadline_finish(&dl, signo, &saved));
    sbx_deadline_free(&dl);
    bench_set(b, "per-call deadline: begin + finish (signal mask, kept timer)", "us", k, t);
    TIME_MEDIAN(t, timer_once());
    bench_set(b, "  ref: a timer made, armed and deleted per call", "us", k, t);
}

int bench_host(struct bench *b, const char *tmpdir)
{
    for (int k = 0; k < BENCH_NSIZES; k++) {
        uint64_t size = bench_sizes_mib[k] << 20;
        uint8_t *image = map_faulted(size), *dst = map_faulted(size);
        build_image(b->guest_dir, image, size);
        double t0 = bench_now_us();
        struct sbx_snapshot *snap = encode(image, size);
        bench_set(b, "capture: encode (zero-page scan + LZ4)", "us", k, bench_now_us() - t0);
        char path[600];
        snprintf(path, sizeof path, "%s/bench-%llu.snap", tmpdir, (unsigned long long)bench_sizes_mib[k]);
        struct sbx_diag d = { 0 };
        t0 = bench_now_us();
        if (sbx_snapshot_write(snap, path, &d))
            bench_die("%s", d.msg);
        bench_set(b, "capture: write file (fsync, rename)", "us", k, bench_now_us() - t0);
        phases_file(b, k, path, snap, dst);
        phases_template(b, k, path, image, dst);
        alternative_raw_file(b, k, tmpdir, image, size, snap);
        deadline_timer(b, k);
        double lz4 = lz4_cli_size(tmpdir, image, snap);
        bench_set(b, "size: snapshot file", "bytes", k, (double)snap->size);
        bench_set(b, "size: non-zero pages, raw", "bytes", k,
                  (double)(snap->hdr->nonzero_pages * SBX_PAGE_SIZE));
        bench_set(b, "size: `lz4 -1` of the non-zero pages", "bytes", k, lz4);
        bench_set(b, "ratio: file / (lz4 -1 + one header page)", "x", k,
                  (double)snap->size / (lz4 + (double)SBX_PAGE_SIZE));
        bench_set(b, "ratio: file restore host side / LZ4+XXH3 ref", "x", k,
                  bench_get(b, "restore from file, host side (open+check+decompress)", k) /
                      bench_get(b, "ref: LZ4_decompress_safe + XXH3, same chunks", k));
        bench_set(b, "ratio: template fill / memcpy ref", "x", k,
                  bench_get(b, "phase: memory fill from template (copy mode)", k) /
                      bench_get(b, "ref: memcpy of the non-zero pages", k));
        sbx_snapshot_free(snap);
        unlink(path);
        munmap(image, size);
        munmap(dst, size);
    }
    return 0;
}
