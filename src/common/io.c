/* io.c - whole reads and writes, retried across EINTR and short transfers;
 * the one checked way to open an untrusted input file. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

int sbx_pread_all(int fd, void *buf, size_t len, off_t off)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = pread(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO; /* the file shrank under us */
            return -1;
        }
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

int sbx_write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* O_NONBLOCK: opening a FIFO must not wait for a writer; the mode check then
 * refuses it. The flag has no effect on reads of a regular file. */
int sbx_open_regular(const char *path, uint64_t max_size, int *fd_out, uint64_t *size_out,
                     struct sbx_diag *diag)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return sbx_fail(diag, SBX_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int rc = SBX_E_IO;
    if (fstat(fd, &st) < 0) {
        sbx_fail(diag, rc, "%s: cannot stat: %s", path, strerror(errno));
        goto err;
    }
    if (!S_ISREG(st.st_mode)) {
        sbx_fail(diag, rc, "%s: %s, not a regular file", path,
                 S_ISDIR(st.st_mode) ? "is a directory" : S_ISFIFO(st.st_mode) ? "is a FIFO"
                 : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "is a device" : "is special");
        goto err;
    }
    if ((uint64_t)st.st_size > max_size) {
        rc = sbx_fail(diag, SBX_E_LIMIT, "%s: %lld bytes, over the limit of %llu bytes", path,
                      (long long)st.st_size, (unsigned long long)max_size);
        goto err;
    }
    *fd_out = fd;
    *size_out = (uint64_t)st.st_size;
    return 0;
err:
    close(fd);
    return rc;
}

int sbx_read_file(const char *path, uint64_t max_size, uint8_t **out, size_t *size_out,
                  struct sbx_diag *diag)
{
    int fd;
    uint64_t size;
    int rc = sbx_open_regular(path, max_size, &fd, &size, diag);
    if (rc)
        return rc;
    uint8_t *buf = malloc(size ? (size_t)size : 1);
    if (!buf) {
        rc = sbx_fail(diag, SBX_E_NOMEM, "%s: out of memory for %llu bytes", path,
                      (unsigned long long)size);
        goto out;
    }
    if (sbx_pread_all(fd, buf, (size_t)size, 0) < 0) {
        rc = sbx_fail(diag, SBX_E_IO, "%s: read failed: %s", path, strerror(errno));
        free(buf);
        goto out;
    }
    *out = buf;
    *size_out = (size_t)size;
out:
    close(fd);
    return rc;
}

static void sync_dir_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

/* An unnamed file in path's directory (O_TMPFILE): killed while writing, the
 * process leaves nothing behind. -1 where the file system lacks O_TMPFILE. */
static int open_unnamed(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    int fd = open(dirname(copy), O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
    free(copy);
    return fd;
}

/* Give the finished unnamed file the name a->tmp (unique beside the path). */
static int link_unnamed(struct sbx_atomic *a, struct sbx_diag *diag)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", a->fd);
    for (unsigned i = 0; i < 100; i++) {
        snprintf(a->tmp, a->cap, "%s.tmp.%ld.%u", a->path, (long)getpid(), i);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, a->tmp, AT_SYMLINK_FOLLOW) == 0) {
            a->named = true;
            return 0;
        }
        if (errno != EEXIST)
            break;
    }
    return sbx_fail(diag, SBX_E_IO, "%s: cannot name the written file: %s", a->path,
                    strerror(errno));
}

int sbx_atomic_begin(struct sbx_atomic *a, const char *path, unsigned mode,
                     struct sbx_diag *diag)
{
    *a = (struct sbx_atomic){ .fd = -1, .path = path, .cap = strlen(path) + 48 };
    if (!(a->tmp = malloc(a->cap)))
        return sbx_fail(diag, SBX_E_NOMEM, "%s: out of memory", path);
    if ((a->fd = open_unnamed(path)) < 0) { /* no O_TMPFILE: a named file, removed on failure */
        snprintf(a->tmp, a->cap, "%s.tmp.XXXXXX", path);
        if ((a->fd = mkstemp(a->tmp)) < 0) {
            int rc = sbx_fail(diag, SBX_E_IO, "%s: cannot create a temporary file beside it: %s",
                              path, strerror(errno));
            sbx_atomic_abort(a);
            return rc;
        }
        a->named = true;
    }
    /* mkstemp and O_TMPFILE honour different modes: set it explicitly */
    if (fchmod(a->fd, (mode_t)mode) < 0) {
        int rc = sbx_fail(diag, SBX_E_IO, "%s: cannot set the mode: %s", path, strerror(errno));
        sbx_atomic_abort(a);
        return rc;
    }
    return 0;
}

int sbx_atomic_commit(struct sbx_atomic *a, struct sbx_diag *diag)
{
    int rc = 0;
    if (fsync(a->fd) < 0)
        rc = sbx_fail(diag, SBX_E_IO, "%s: writing failed: %s", a->path, strerror(errno));
    if (rc == 0 && !a->named)
        rc = link_unnamed(a, diag);
    /* Renamed before the close, so a kill between naming and renaming has
     * one step to land in. The data is already fsync'd: close cannot lose it. */
    if (rc == 0 && rename(a->tmp, a->path) < 0)
        rc = sbx_fail(diag, SBX_E_IO, "%s: cannot put the file in place: %s", a->path,
                      strerror(errno));
    if (rc) {
        sbx_atomic_abort(a);
        return rc;
    }
    close(a->fd);
    free(a->tmp);
    a->fd = -1;
    a->tmp = NULL;
    sync_dir_of(a->path);
    return 0;
}

void sbx_atomic_abort(struct sbx_atomic *a)
{
    if (a->fd >= 0)
        close(a->fd);
    if (a->named)
        unlink(a->tmp);
    free(a->tmp);
    *a = (struct sbx_atomic){ .fd = -1 };
}
