/* internal.h - definitions shared by the library's source files, not public. */
#ifndef SBX_INTERNAL_H
#define SBX_INTERNAL_H

#include <stdarg.h>
#include <sys/types.h>

#include "snapbox.h"

#define SBX_MAX_SEGMENTS 16u
#define SBX_MAX_GUEST_FILE (64u << 20) /* largest ELF file we read */

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
 * argument types. */
bool sbx_valid_func_name(const char *name, size_t len);
bool sbx_valid_signature(unsigned ret, unsigned nargs, const uint8_t *args);

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

/* Find the snapbox version note among the notes in buf[0, len), each note
 * aligned to align (4 or 8). Returns 1 and fills *out when found, 0 when there
 * is none, SBX_E_NOTE with why[] filled when a note is malformed. */
int sbx_note_parse(const uint8_t *buf, size_t len, size_t align, struct sbx_version *out,
                   char *why, size_t why_len);

#endif
