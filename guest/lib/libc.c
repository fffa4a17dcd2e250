/* libc.c - run a guest on Debian's musl C library: start it the way musl
 * expects (argv, auxv with AT_RANDOM and the TLS program header), and serve
 * the system calls musl makes, inside the guest (docs/guest-libc.md has the
 * table). Built with general registers only: see syscall.S. */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>

#include "sbx_guest.h"

#define PAGE 4096ul
#define MSR_FS_BASE 0xc0000100u
#define MSR_STAR 0xc0000081u
#define MSR_LSTAR 0xc0000082u
#define MSR_SFMASK 0xc0000084u
#define SFMASK_TF_IF_DF_AC 0x40700ul
#define ARCH_SET_FS 0x1002
#define MAX_SYSCALL 512
#define LINE_MAX_BYTES 1024

struct sbx_syscall_frame {
    uint64_t nr, a[6];
};

extern void sbx_syscall_entry(void);
extern int __libc_start_main(int (*main)(int, char **, char **), int argc, char **argv, ...);
extern char __tdata_start[], __tdata_end[], __tbss_end[], __tls_align[];

static void wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

/* Zero and copy with string instructions: no vector registers here. */
static void zero(void *p, size_t n)
{
    __asm__ volatile("rep stosb" : "+D"(p), "+c"(n) : "a"(0) : "memory");
}

static void copy(void *d, const void *s, size_t n)
{
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
}

/* ---- Memory: brk below, anonymous mappings above, over the heap ----------- */
static uint64_t brk_start, brk_cur, brk_end, map_start, map_pages;
static uint64_t map_used[(1ul << 30) / PAGE / 64]; /* a bit per page of 1 GiB at most */

static bool page_used(uint64_t i) { return (map_used[i / 64] >> (i % 64)) & 1; }
static void mark(uint64_t first, uint64_t n, bool used)
{
    for (uint64_t i = first; i < first + n; i++)
        map_used[i / 64] = used ? map_used[i / 64] | 1ull << (i % 64)
                                : map_used[i / 64] & ~(1ull << (i % 64));
}

static void heap_init(void)
{
    uint64_t heap = SBX_BOOT->heap_start, end = SBX_BOOT->heap_end;
    brk_start = brk_cur = heap;
    brk_end = heap + ((end - heap) / 8 & ~(PAGE - 1));
    map_start = brk_end;
    map_pages = (end - map_start) / PAGE;
}

static long sys_brk(uint64_t want)
{
    if (want >= brk_start && want <= brk_end) {
        if (want > brk_cur)
            zero((void *)brk_cur, want - brk_cur);
        brk_cur = want;
    }
    return (long)brk_cur;
}

/* First fit: n free pages in a row. */
static long find_free(uint64_t n)
{
    for (uint64_t i = 0, run = 0; i < map_pages; i++) {
        run = page_used(i) ? 0 : run + 1;
        if (run == n)
            return (long)(i + 1 - n);
    }
    return -1;
}

static long sys_mmap(uint64_t addr, uint64_t len, uint64_t flags, int64_t fd)
{
    (void)addr; /* a hint only; MAP_FIXED is refused below */
    if (!(flags & MAP_ANONYMOUS) || (flags & MAP_FIXED) || fd != -1 || len == 0)
        return -EINVAL;
    uint64_t n = (len + PAGE - 1) / PAGE;
    long first = find_free(n);
    if (first < 0)
        return -ENOMEM;
    mark((uint64_t)first, n, true);
    void *p = (void *)(map_start + (uint64_t)first * PAGE);
    zero(p, n * PAGE);
    return (long)p;
}

static bool mapped_range(uint64_t addr, uint64_t len, uint64_t *first, uint64_t *n)
{
    if (addr % PAGE || addr < map_start || len == 0)
        return false;
    *first = (addr - map_start) / PAGE;
    *n = (len + PAGE - 1) / PAGE;
    return *first <= map_pages && *n <= map_pages - *first;
}

static long sys_munmap(uint64_t addr, uint64_t len)
{
    uint64_t first, n;
    if (!mapped_range(addr, len, &first, &n))
        return -EINVAL;
    mark(first, n, false);
    return 0;
}

static long sys_mremap(uint64_t old, uint64_t old_len, uint64_t new_len, uint64_t flags)
{
    uint64_t first, n, want = (new_len + PAGE - 1) / PAGE;
    if (!mapped_range(old, old_len, &first, &n) || new_len == 0)
        return -EINVAL;
    if (want <= n) {
        mark(first + want, n - want, false);
        return (long)old;
    }
    bool room = first + want <= map_pages;
    for (uint64_t i = first + n; room && i < first + want; i++)
        room = !page_used(i);
    if (room) {
        mark(first + n, want - n, true);
        zero((void *)(old + n * PAGE), (want - n) * PAGE);
        return (long)old;
    }
    if (!(flags & MREMAP_MAYMOVE))
        return -ENOMEM;
    long p = sys_mmap(0, new_len, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    if (p < 0)
        return p;
    copy((void *)p, (void *)old, n * PAGE);
    mark(first, n, false);
    return p;
}

static long sys_madvise(uint64_t addr, uint64_t len, uint64_t advice)
{
    uint64_t first, n;
    if (advice == MADV_DONTNEED && mapped_range(addr, len, &first, &n))
        zero((void *)addr, n * PAGE);
    return 0;
}

/* ---- Output: whole lines to the host log ----------------------------------- */
struct line {
    char buf[LINE_MAX_BYTES + 1];
    size_t len;
};
static struct line lines[2]; /* fd 1 (info), fd 2 (warning) */

static void flush_line(int fd)
{
    struct line *l = &lines[fd - 1];
    if (!l->len)
        return;
    l->buf[l->len] = '\0';
    sbx_log(fd == 1 ? SBX_LOG_INFO : SBX_LOG_WARN, l->buf);
    l->len = 0;
}

static void put(int fd, const char *p, size_t n)
{
    struct line *l = &lines[fd - 1];
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' || l->len == LINE_MAX_BYTES) {
            flush_line(fd);
            if (p[i] == '\n')
                continue;
        }
        l->buf[l->len++] = p[i];
    }
}

static long sys_writev(int64_t fd, const struct iovec *iov, int64_t cnt)
{
    if (fd != 1 && fd != 2)
        return -EBADF;
    long total = 0;
    for (int64_t i = 0; i < cnt; i++) {
        put((int)fd, iov[i].iov_base, iov[i].iov_len);
        total += (long)iov[i].iov_len;
    }
    return total;
}

/* ---- Time and entropy from the host ------------------------------------------ */
static uint64_t mono_last_ns, mono_offset_ns;

static uint64_t host_time_ns(uint64_t clock)
{
    SBX_XCHG->hc_a[0] = clock;
    sbx_hypercall(SBX_HC_TIME);
    return SBX_XCHG->hc_a[0] * 1000000000ull + SBX_XCHG->hc_a[1];
}

/* A snapshot restored on another host, or after a reboot, sees a smaller
 * host clock: the offset keeps the guest's monotonic clock from going back. */
static uint64_t monotonic_ns(void)
{
    uint64_t now = host_time_ns(SBX_CLOCK_MONOTONIC) + mono_offset_ns;
    if (now < mono_last_ns) {
        mono_offset_ns += mono_last_ns - now;
        now = mono_last_ns;
    }
    mono_last_ns = now;
    return now;
}

static long sys_clock_gettime(uint64_t clk, struct timespec *ts)
{
    bool real = clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE;
    uint64_t ns = real ? host_time_ns(SBX_CLOCK_REALTIME) : monotonic_ns();
    ts->tv_sec = (time_t)(ns / 1000000000ull);
    ts->tv_nsec = (long)(ns % 1000000000ull);
    return 0;
}

static long sys_getrandom(uint8_t *p, uint64_t len)
{
    for (uint64_t done = 0; done < len;) {
        uint64_t n = len - done < SBX_RANDOM_MAX ? len - done : SBX_RANDOM_MAX;
        SBX_XCHG->hc_a[0] = (uint64_t)(uintptr_t)(p + done);
        SBX_XCHG->hc_a[1] = n;
        sbx_hypercall(SBX_HC_RANDOM);
        done += n;
    }
    return (long)len;
}

/* ---- The table ----------------------------------------------------------------- */
static uint64_t logged[MAX_SYSCALL / 64];

static long unsupported(uint64_t nr)
{
    if (nr < MAX_SYSCALL && !((logged[nr / 64] >> (nr % 64)) & 1)) {
        logged[nr / 64] |= 1ull << (nr % 64);
        char msg[48] = "unsupported system call ";
        char digits[20];
        int n = 0;
        do
            digits[n++] = (char)('0' + nr % 10);
        while ((nr /= 10) && n < 20);
        size_t at = 24;
        while (n)
            msg[at++] = digits[--n];
        msg[at] = '\0';
        sbx_log(SBX_LOG_WARN, msg);
    }
    return -ENOSYS;
}

static _Noreturn void guest_exit(int64_t code)
{
    flush_line(1);
    flush_line(2);
    sbx_abort((int32_t)code, "the guest called exit");
}

static long sys_ioctl(int64_t fd, uint64_t req, struct winsize *ws)
{
    /* stdout and stderr are line-buffered terminals to musl, so output
     * reaches the log line by line. */
    if ((fd == 1 || fd == 2) && req == TIOCGWINSZ) {
        *ws = (struct winsize){ .ws_row = 24, .ws_col = 80 };
        return 0;
    }
    return -ENOTTY;
}

long sbx_syscall(const struct sbx_syscall_frame *f)
{
    const uint64_t *a = f->a;
    switch (f->nr) {
    case SYS_read: return a[0] == 0 ? 0 : -EBADF;
    case SYS_write: {
        struct iovec v = { (void *)a[1], a[2] };
        return sys_writev((int64_t)a[0], &v, 1);
    }
    case SYS_writev: return sys_writev((int64_t)a[0], (const struct iovec *)a[1], (int64_t)a[2]);
    case SYS_brk: return sys_brk(a[0]);
    case SYS_mmap: return sys_mmap(a[0], a[1], a[3], (int64_t)a[4]);
    case SYS_munmap: return sys_munmap(a[0], a[1]);
    case SYS_mremap: return sys_mremap(a[0], a[1], a[2], a[3]);
    case SYS_madvise: return sys_madvise(a[0], a[1], a[2]);
    case SYS_mprotect: return 0;
    case SYS_clock_gettime: return sys_clock_gettime(a[0], (struct timespec *)a[1]);
    case SYS_gettimeofday: {
        struct timespec ts;
        sys_clock_gettime(CLOCK_REALTIME, &ts);
        if (a[0])
            *(struct timeval *)a[0] = (struct timeval){ ts.tv_sec, ts.tv_nsec / 1000 };
        return 0;
    }
    case SYS_getrandom: return sys_getrandom((uint8_t *)a[0], a[1]);
    case SYS_exit:
    case SYS_exit_group: guest_exit((int64_t)a[0]);
    case SYS_arch_prctl:
        if (a[0] != ARCH_SET_FS)
            return -EINVAL;
        wrmsr(MSR_FS_BASE, a[1]);
        return 0;
    case SYS_set_tid_address: return 1;
    case SYS_gettid:
    case SYS_getpid: return 1;
    case SYS_rt_sigprocmask:
    case SYS_rt_sigaction:
    case SYS_sigaltstack: return 0;
    case SYS_ioctl: return sys_ioctl((int64_t)a[0], a[1], (struct winsize *)a[2]);
    default: return unsupported(f->nr);
    }
}

/* ---- Start-up and the call hooks of guest.c ------------------------------------- */
void sbx_guest_call_start(void)
{
    zero(logged, sizeof logged); /* unsupported calls are logged once per call */
}

void sbx_guest_call_done(void)
{
    fflush(NULL);
    flush_line(1);
    flush_line(2);
}

static int libc_main(int argc, char **argv, char **envp)
{
    (void)argc, (void)argv, (void)envp;
    sbx_guest_main();
}

_Noreturn void sbx_start(void)
{
    wrmsr(MSR_STAR, (uint64_t)0x08 << 32); /* SYSCALL: the one code segment */
    wrmsr(MSR_LSTAR, (uint64_t)(uintptr_t)sbx_syscall_entry);
    wrmsr(MSR_SFMASK, SFMASK_TF_IF_DF_AC);
    heap_init();
    /* The TLS template as musl finds it: a PT_TLS program header. */
    /* The linker placed TLS variables for this alignment: musl must use the same. */
    static Elf64_Phdr tls = { .p_type = PT_TLS };
    tls.p_align = (uint64_t)(uintptr_t)__tls_align;
    tls.p_vaddr = (uint64_t)(uintptr_t)__tdata_start;
    tls.p_filesz = (uint64_t)(__tdata_end - __tdata_start);
    tls.p_memsz = (uint64_t)(__tbss_end - __tdata_start);
    static uint8_t at_random[16]; /* musl's stack-protector canary */
    sys_getrandom(at_random, sizeof at_random);
    static char name[] = "guest";
    /* argv, envp, then the auxiliary vector, as the kernel lays them out */
    static uint64_t start[] = {
        0, 0, 0,
        AT_PHDR, 0, AT_PHNUM, 1, AT_PHENT, sizeof(Elf64_Phdr), AT_PAGESZ, PAGE,
        AT_RANDOM, 0, AT_NULL, 0,
    };
    start[0] = (uint64_t)(uintptr_t)name;
    start[4] = (uint64_t)(uintptr_t)&tls;
    start[12] = (uint64_t)(uintptr_t)at_random;
    __libc_start_main(libc_main, 1, (char **)start, 0, 0, 0);
    sbx_abort(-1, "the C library returned from its start-up");
}
