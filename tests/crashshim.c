/* crashshim.c - LD_PRELOAD fault injection for the crash-safety test: once a
 * program starts writing a file (an O_TMPFILE or O_CREAT open), every
 * write-path call (open, write, fchmod, fsync, close, linkat, rename) counts,
 * and call number $SBX_CRASH_AT kills the process with SIGKILL before it
 * happens. write() is cut to 1 KiB per call so a file takes many writes. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static bool armed;
static long count;

static void step(void)
{
    static long crash_at = -1;
    if (crash_at < 0) {
        const char *e = getenv("SBX_CRASH_AT");
        crash_at = e ? atol(e) : 0;
    }
    if (armed && ++count == crash_at)
        raise(SIGKILL);
}

#define NEXT(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

static int open_common(const char *path, int flags, mode_t mode, bool at, int dirfd)
{
    if ((flags & O_TMPFILE) == O_TMPFILE || (flags & O_CREAT))
        armed = true;
    step();
    return at ? NEXT(openat)(dirfd, path, flags, mode) : NEXT(open)(path, flags, mode);
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
    va_end(ap);
    return open_common(path, flags, mode, false, AT_FDCWD);
}
int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
    va_end(ap);
    return open_common(path, flags, mode, true, dirfd);
}

int mkstemp(char *tmpl)
{
    armed = true;
    step();
    return NEXT(mkstemp)(tmpl);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    step();
    return NEXT(write)(fd, buf, armed && n > 1024 ? 1024 : n);
}

int fchmod(int fd, mode_t mode) { step(); return NEXT(fchmod)(fd, mode); }
int fsync(int fd) { step(); return NEXT(fsync)(fd); }
int close(int fd) { step(); return NEXT(close)(fd); }
int rename(const char *a, const char *b) { step(); return NEXT(rename)(a, b); }

int linkat(int d1, const char *a, int d2, const char *b, int flags)
{
    step();
    return NEXT(linkat)(d1, a, d2, b, flags);
}
