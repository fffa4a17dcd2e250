/* io.c - whole reads and writes, retried across EINTR and short transfers;
 * the one checked way to open an untrusted input file; the one atomic way to
 * write an output file (snapshots, core dumps). */
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

/* Fill fd, give it its mode and make it durable. */
static int write_durably(int fd, const char *path, unsigned mode, sbx_fill_fn fill, void *ctx,
                         struct sbx_diag *diag)
{
    /* mkstemp and O_TMPFILE honour different modes: set it explicitly */
    if (fchmod(fd, (mode_t)mode) < 0)
        return sbx_fail(diag, SBX_E_IO, "%s: chmod failed: %s", path, strerror(errno));
    int rc = fill(fd, ctx, path, diag);
    if (rc == 0 && fsync(fd) < 0)
        rc = sbx_fail(diag, SBX_E_IO, "%s: fsync failed: %s", path, strerror(errno));
    return rc;
}

/* An unnamed file in path's directory (O_TMPFILE): killed while writing, the
 * process leaves nothing behind. -1 where the file system lacks O_TMPFILE. */
static int open_unnamed(const char *path, unsigned mode)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    int fd = open(dirname(copy), O_TMPFILE | O_WRONLY | O_CLOEXEC, (mode_t)mode);
    free(copy);
    return fd;
}

/* Give the finished unnamed file fd the name tmp (unique beside path). */
static int link_unnamed(int fd, const char *path, char *tmp, size_t cap, struct sbx_diag *diag)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    for (unsigned i = 0; i < 100; i++) {
        snprintf(tmp, cap, "%s.tmp.%ld.%u", path, (long)getpid(), i);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0)
            return 0;
        if (errno != EEXIST)
            break;
    }
    return sbx_fail(diag, SBX_E_IO, "%s: cannot name the written file: %s", path, strerror(errno));
}

int sbx_write_atomic(const char *path, unsigned mode, sbx_fill_fn fill, void *ctx,
                     struct sbx_diag *diag)
{
    size_t cap = strlen(path) + 48;
    char *tmp = malloc(cap);
    if (!tmp)
        return sbx_fail(diag, SBX_E_NOMEM, "%s: out of memory", path);
    int rc = SBX_E_IO;
    bool named = false;
    int fd = open_unnamed(path, mode);
    if (fd >= 0) {
        rc = write_durably(fd, path, mode, fill, ctx, diag);
        if (rc == 0 && (rc = link_unnamed(fd, path, tmp, cap, diag)) == 0)
            named = true;
    } else { /* no O_TMPFILE here: a named temporary file, removed on failure */
        snprintf(tmp, cap, "%s.tmp.XXXXXX", path);
        if ((fd = mkstemp(tmp)) < 0) {
            sbx_fail(diag, rc, "%s: cannot create a temporary file beside it: %s", path,
                     strerror(errno));
            goto out_free;
        }
        named = true;
        rc = write_durably(fd, path, mode, fill, ctx, diag);
    }
    /* Renamed before the close, so a kill between naming and renaming has
     * one step to land in. The data is already fsync'd: close cannot lose it. */
    if (rc == 0 && rename(tmp, path) < 0)
        rc = sbx_fail(diag, SBX_E_IO, "%s: cannot put the file in place: %s", path,
                      strerror(errno));
    close(fd);
    if (rc == 0)
        sync_dir_of(path);
    else if (named)
        unlink(tmp);
out_free:
    free(tmp);
    return rc;
}
