/* libctest.c - a guest on the C library (musl): each function exercises one
 * thing the syscall layer and the start-up provide (tests/test_libc.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sbx_guest.h"

static int ctor_value;
static _Thread_local long tls_count = 40;
static long restores;
static char out[4096];

__attribute__((constructor)) static void ctor(void) { ctor_value = 42; }

static void on_restore(void) { restores++; }

static void say(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    int n = printf("hello %.*s\n", (int)sbx_arg_len(a, 0), (const char *)sbx_arg_ptr(a, 0));
    fprintf(stderr, "to stderr");
    sbx_ret_i64(r, n);
}

/* Allocate and free `rounds` MiB in total, in 1 MiB blocks and small ones. */
static void churn(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    int64_t rounds = sbx_arg_i64(a, 0);
    for (int64_t i = 0; i < rounds; i++) {
        char *big = malloc(1 << 20);
        char *small = malloc(100 + (size_t)i % 300);
        if (!big || !small)
            sbx_abort(1, "churn: out of memory");
        memset(big, (int)i, 1 << 20);
        big = realloc(big, (2 << 20) - 4096);
        if (!big)
            sbx_abort(1, "churn: realloc failed");
        free(big);
        free(small);
    }
    sbx_ret_i64(r, rounds);
}

static void parse(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    char text[64];
    size_t n = sbx_arg_len(a, 0) < sizeof text - 1 ? sbx_arg_len(a, 0) : sizeof text - 1;
    memcpy(text, sbx_arg_ptr(a, 0), n);
    text[n] = '\0';
    sbx_ret_f64(r, strtod(text, NULL));
}

static void format(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    int n = snprintf(out, sizeof out, "%.3f|%5d|%-4s|%x", sbx_arg_f64(a, 0), 42, "ab", 255);
    sbx_ret_buf(r, out, (size_t)n);
}

static int cmp(const void *x, const void *y) { return *(const char *)x - *(const char *)y; }

static void sort(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    size_t n = sbx_arg_len(a, 0) < sizeof out ? sbx_arg_len(a, 0) : sizeof out;
    memcpy(out, sbx_arg_ptr(a, 0), n);
    qsort(out, n, 1, cmp);
    sbx_ret_buf(r, out, n);
}

/* Does the extended regular expression (arg 0) match the text (arg 1)? */
static void match(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    char pat[256], text[256];
    snprintf(pat, sizeof pat, "%.*s", (int)sbx_arg_len(a, 0), (const char *)sbx_arg_ptr(a, 0));
    snprintf(text, sizeof text, "%.*s", (int)sbx_arg_len(a, 1), (const char *)sbx_arg_ptr(a, 1));
    regex_t re;
    if (regcomp(&re, pat, REG_EXTENDED | REG_NOSUB))
        sbx_abort(2, "match: bad pattern");
    sbx_ret_i64(r, regexec(&re, text, 0, NULL, 0) == 0);
    regfree(&re);
}

static void tls(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a;
    sbx_ret_i64(r, ++tls_count);
}

static void constructed(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a;
    sbx_ret_i64(r, ctor_value);
}

static int cpu_has_avx2(void)
{
    unsigned a, b, c, d;
    __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
    return (b >> 5) & 1;
}

__attribute__((target("avx2"), noinline)) static int64_t sum_avx2(const int32_t *v, int n)
{
    typedef int32_t v8 __attribute__((vector_size(32)));
    v8 acc = { 0 };
    for (int i = 0; i + 8 <= n; i += 8) {
        v8 x;
        memcpy(&x, v + i, sizeof x);
        acc += x;
    }
    int64_t s = 0;
    for (int i = 0; i < 8; i++)
        s += acc[i];
    return s;
}

/* Sum of 1..n (n a multiple of 8) with AVX2, or -1 where the CPU lacks it. */
static void avx2(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    static int32_t v[1024];
    int n = (int)sbx_arg_i64(a, 0);
    if (!cpu_has_avx2() || n < 0 || n > 1024) {
        sbx_ret_i64(r, -1);
        return;
    }
    for (int i = 0; i < n; i++)
        v[i] = i + 1;
    sbx_ret_i64(r, sum_avx2(v, n));
}

static void entropy(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a;
    static uint8_t bytes[16];
    if (getrandom(bytes, sizeof bytes, 0) != sizeof bytes)
        sbx_abort(3, "getrandom failed");
    sbx_ret_buf(r, bytes, sizeof bytes);
}

static void restored(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a;
    sbx_ret_i64(r, restores);
}

static void clock_ms(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    struct timespec ts;
    clock_gettime(sbx_arg_i64(a, 0) ? CLOCK_MONOTONIC : CLOCK_REALTIME, &ts);
    sbx_ret_i64(r, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* An unsupported system call: its errno (ENOSYS), twice, logged once. */
static void nosys(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a;
    long rc1 = syscall(SYS_socket, 2, 1, 0);
    int e1 = errno;
    long rc2 = syscall(SYS_socket, 2, 1, 0);
    sbx_ret_i64(r, rc1 == -1 && rc2 == -1 && e1 == errno ? e1 : -1);
}

static void read_stdin(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a;
    char c;
    sbx_ret_i64(r, read(0, &c, 1));
}

static void quit(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)r;
    printf("leaving");
    exit((int)sbx_arg_i64(a, 0));
}

/* A hostile request: the system-call entry and the TLS base pointed at
 * nothing. Reset must give the next request working ones. */
static void clobber(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a, (void)r;
    __asm__ volatile("wrmsr" : : "c"(0xc0000082u), "a"(0), "d"(0)); /* LSTAR */
    __asm__ volatile("wrmsr" : : "c"(0xc0000100u), "a"(0), "d"(0)); /* FS_BASE */
}

/* Every system call of the table (docs/guest-libc.md) made directly: a bit
 * per check that failed, so 0 means all behaved as documented. */
static void table(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a;
    int64_t bad = 0, bit = 1;
#define CHECK(cond) (bad |= (cond) ? 0 : bit, bit <<= 1)
    long b0 = syscall(SYS_brk, 0);
    CHECK(syscall(SYS_brk, b0 + 8192) == b0 + 8192 && ((char *)b0)[8191] == 0);
    /* syscall() reads longs: an int -1 would arrive as 0xffffffff */
    char *m = (char *)syscall(SYS_mmap, 0L, 3L * 4096, (long)(PROT_READ | PROT_WRITE),
                              (long)(MAP_PRIVATE | MAP_ANONYMOUS), -1L, 0L);
    CHECK(m != MAP_FAILED && m[0] == 0 && m[3 * 4096 - 1] == 0);
    if (m == MAP_FAILED) {
        sbx_ret_i64(r, bad | (int64_t)1 << 40 | (int64_t)errno << 48);
        return;
    }
    m[0] = 'x';
    char *g = (char *)syscall(SYS_mremap, m, 3 * 4096, 64 * 4096, MREMAP_MAYMOVE);
    CHECK(g != MAP_FAILED && g[0] == 'x' && g[64 * 4096 - 1] == 0);
    if (g == MAP_FAILED) {
        sbx_ret_i64(r, bad | (int64_t)1 << 41 | (int64_t)errno << 48);
        return;
    }
    CHECK(syscall(SYS_madvise, g, 4096, MADV_DONTNEED) == 0 && g[0] == 0);
    CHECK(syscall(SYS_munmap, g, 64 * 4096) == 0);
    CHECK(syscall(SYS_mmap, 0L, 4096L, (long)PROT_READ,
                  (long)(MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS), -1L, 0L) == -1 && errno == EINVAL);
    CHECK(syscall(SYS_mprotect, b0, 4096, PROT_READ | PROT_WRITE) == 0);
    CHECK(syscall(SYS_write, 1, "table\n", 6) == 6);
    struct iovec iov[2] = { { "ta", 2 }, { "ble\n", 4 } };
    CHECK(syscall(SYS_writev, 2, iov, 2) == 6);
    CHECK(syscall(SYS_write, 7, "x", 1) == -1 && errno == EBADF);
    char c;
    CHECK(syscall(SYS_read, 0, &c, 1) == 0);
    struct timespec ts = { 0, 0 };
    CHECK(syscall(SYS_clock_gettime, CLOCK_REALTIME, &ts) == 0 && ts.tv_sec > 1700000000);
    CHECK(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts) == 0);
    struct timeval tv = { 0, 0 };
    CHECK(syscall(SYS_gettimeofday, &tv, NULL) == 0 && tv.tv_sec > 1700000000);
    uint8_t rnd[300] = { 0 }; /* more than one hypercall's worth */
    CHECK(syscall(SYS_getrandom, rnd, sizeof rnd, 0) == (long)sizeof rnd && rnd[299] | rnd[298]);
    CHECK(syscall(SYS_set_tid_address, &c) == 1 && syscall(SYS_getpid) == 1 &&
          syscall(SYS_gettid) == 1);
    CHECK(syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, NULL, 8) == 0);
    CHECK(syscall(SYS_arch_prctl, 0x1003 /* ARCH_GET_FS */, &ts) == -1 && errno == EINVAL);
    struct winsize ws;
    CHECK(syscall(SYS_ioctl, 1, TIOCGWINSZ, &ws) == 0 && ws.ws_col == 80);
    CHECK(syscall(SYS_ioctl, 1, TCGETS, &ws) == -1 && errno == ENOTTY);
#undef CHECK
    sbx_ret_i64(r, bad);
}

void sbx_guest_init(void)
{
    sbx_register("table", SBX_T_I64, table, 0);
    sbx_register("clobber", SBX_T_VOID, clobber, 0);
    sbx_on_restore(on_restore);
    sbx_register("say", SBX_T_I64, say, 1, SBX_T_STR);
    sbx_register("churn", SBX_T_I64, churn, 1, SBX_T_I64);
    sbx_register("parse", SBX_T_F64, parse, 1, SBX_T_STR);
    sbx_register("format", SBX_T_STR, format, 1, SBX_T_F64);
    sbx_register("sort", SBX_T_BYTES, sort, 1, SBX_T_BYTES);
    sbx_register("match", SBX_T_I64, match, 2, SBX_T_STR, SBX_T_STR);
    sbx_register("tls", SBX_T_I64, tls, 0);
    sbx_register("constructed", SBX_T_I64, constructed, 0);
    sbx_register("avx2", SBX_T_I64, avx2, 1, SBX_T_I64);
    sbx_register("entropy", SBX_T_BYTES, entropy, 0);
    sbx_register("restored", SBX_T_I64, restored, 0);
    sbx_register("clock_ms", SBX_T_I64, clock_ms, 1, SBX_T_I64);
    sbx_register("nosys", SBX_T_I64, nosys, 0);
    sbx_register("read_stdin", SBX_T_I64, read_stdin, 0);
    sbx_register("quit", SBX_T_VOID, quit, 1, SBX_T_I64);
}
