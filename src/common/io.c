/* io.c - whole reads and writes, retried across EINTR and short transfers;
 * the one checked way to open an untrusted input file. */
#include <errno.h>
#include <fcntl.h>
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
