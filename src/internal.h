/* internal.h - definitions shared by the library's source files, not public. */
#ifndef SBX_INTERNAL_H
#define SBX_INTERNAL_H

#include <stdarg.h>
#include <sys/types.h>

#include "snapbox.h"

#define SBX_MAX_SEGMENTS 16u
#define SBX_MAX_GUEST_FILE (64u << 20) /* largest ELF file we read */
#define SBX_T_COUNT_ (SBX_T_BYTES + 1) /* API type codes are 0..SBX_T_COUNT_ - 1 */

#define sbx_offsetofend(TYPE, FIELD) (offsetof(TYPE, FIELD) + sizeof(((TYPE *)0)->FIELD))

struct sbx_guest {
    char *path;
    uint8_t *file;
    size_t file_size;
    uint64_t entry;
    size_t nseg;
    struct sbx_segment seg[SBX_MAX_SEGMENTS];
    enum sbx_note_source note_src;
    struct sbx_version note;
    uint64_t hash;
};

/* elf.c: sbx_guest_open on a copy of buf[0, len), named name in messages
 * (fuzzers feed untrusted bytes through it). */
int sbx_guest_from_memory(const void *buf, size_t len, const char *name, struct sbx_guest **out,
                          struct sbx_diag *diag);

/* Fill diag (if any) with code and a formatted message; returns code. */
int sbx_fail(struct sbx_diag *diag, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepend "PREFIX: " (formatted) to diag's message. */
void sbx_diag_prefix(struct sbx_diag *diag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Log through a callback if there is one. */
void sbx_logf(sbx_log_fn log, void *ctx, enum sbx_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* names.c: a function name is 1..SBX_MAX_NAME characters of [A-Za-z0-9_];
 * a signature has a valid return type and at most SBX_MAX_ARGS non-void
 * argument types. Wire and file type codes are converted to enum sbx_type
 * (src/vcpu/value.c) before this rule sees them. */
bool sbx_valid_func_name(const char *name, size_t len);
bool sbx_valid_signature(enum sbx_type ret, size_t nargs, const enum sbx_type *args);

/* opts.c: the one copy of a caller's sized struct (those that begin with
 * size_t sz). sbx_opts_in copies src (NULL: all zero, the defaults) into
 * dst, the library's own dst_size-byte version: a smaller sz leaves the
 * fields it lacks zero, a larger one is accepted only if the bytes this
 * library does not know are zero. sbx_opts_out copies the library's
 * src_size-byte src into the caller's dst up to dst's sz, leaving what the
 * caller has beyond src_size alone. Both: SBX_E_INVAL naming struct `name`
 * for an sz too small to hold sz itself or implausibly large (garbage). */
int sbx_opts_in(void *dst, size_t dst_size, const void *src, const char *name,
                struct sbx_diag *diag);
int sbx_opts_out(void *dst, const void *src, size_t src_size, const char *name,
                 struct sbx_diag *diag);

/* version.c: the one version policy. subject picks the fix a mismatch names:
 * "rebuild the guest" for an ELF file, "recreate the snapshot" for the guest
 * a snapshot recorded. sbx_version_check is the ELF case. */
enum sbx_version_subject { SBX_VERSION_OF_ELF, SBX_VERSION_OF_SNAPSHOT };
int sbx_version_verdict(const struct sbx_version *host, const struct sbx_version *guest,
                        enum sbx_version_policy policy, enum sbx_version_subject subject,
                        const char *what, struct sbx_diag *diag);

/* io.c: 0, or -1 with errno set. */
int sbx_pread_all(int fd, void *buf, size_t len, off_t off);
int sbx_write_all(int fd, const void *buf, size_t len);
/* Open path for reading without blocking (a FIFO or device is refused, not
 * waited on), check it is a regular file of at most max_size bytes. */
int sbx_open_regular(const char *path, uint64_t max_size, int *fd, uint64_t *size,
                     struct sbx_diag *diag);
/* The whole of such a file, in a malloc'd buffer. */
int sbx_read_file(const char *path, uint64_t max_size, uint8_t **out, size_t *size,
                  struct sbx_diag *diag);

/* A file written in full, then put in place atomically: an unnamed file
 * (O_TMPFILE) in the path's directory, fsync'd, named, renamed over path,
 * directory fsync'd. On any failure, or sbx_atomic_abort, path keeps its old
 * content and nothing is left beside it; a process killed while writing
 * leaves nothing either, except in the instant between naming and renaming
 * (a complete "PATH.tmp.PID.N"). File systems without O_TMPFILE get a named
 * temporary file instead. The file gets mode (0644 for outputs anyone may
 * read, 0600 for ones holding guest memory). Write (and read back) through a->fd; begin and
 * commit free everything on failure. */
struct sbx_atomic {
    int fd;
    const char *path; /* the caller's, kept until commit or abort */
    char *tmp;
    size_t cap;
    bool named;
};
int sbx_atomic_begin(struct sbx_atomic *a, const char *path, unsigned mode,
                     struct sbx_diag *diag);
int sbx_atomic_commit(struct sbx_atomic *a, struct sbx_diag *diag);
void sbx_atomic_abort(struct sbx_atomic *a);

/* Find the snapbox version note among the notes in buf[0, len), each note
 * aligned to align (4 or 8). Returns 1 and fills *out when found, 0 when there
 * is none, SBX_E_NOTE with why[] filled when a note is malformed. */
int sbx_note_parse(const uint8_t *buf, size_t len, size_t align, struct sbx_version *out,
                   char *why, size_t why_len);

#endif
