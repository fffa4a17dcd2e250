/* testutil.h - helpers for the cmocka suites: files, mutation, log capture. */
#ifndef SBX_TESTUTIL_H
#define SBX_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "snapbox.h"

/* Run child(t) in a forked process (a seccomp filter cannot be undone, so a
 * confined test runs there) and assert that it exited 0. The child leaves
 * with _exit: no leak check, which needs ptrace. */
static inline void tu_in_child(int (*child)(const struct sbx_template *), const struct sbx_template *t)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(child(t));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static inline uint8_t *tu_read(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static inline void tu_write(const char *path, const void *buf, size_t size)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
}

/* A fresh path in the suite's temporary directory. */
static inline const char *tu_path(const char *name)
{
    static char dir[256];
    static char path[4][512];
    static unsigned next;
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/snapbox-test.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        assert_non_null(mkdtemp(dir));
    }
    char *p = path[next++ % 4];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

/* The build directory: argv[1], else $SBX_BUILD, else "build". */
static inline const char *tu_build_dir(int argc, char **argv)
{
    if (argc > 1)
        return argv[1];
    return getenv("SBX_BUILD") ? getenv("SBX_BUILD") : "build";
}

/* Does haystack contain needle? Prints the haystack on failure. */
static inline void tu_assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle)) {
        fprintf(stderr, "expected \"%s\" in: %s\n", needle, haystack);
        fail();
    }
}

/* Log capture for the log callback. */
struct tu_log {
    int count;
    enum sbx_log_level last_level;
    char last[1024];
    char all[4096];
};

static inline void tu_log_cb(void *ctx, enum sbx_log_level level, const char *msg)
{
    struct tu_log *l = ctx;
    l->count++;
    l->last_level = level;
    snprintf(l->last, sizeof l->last, "%s", msg);
    size_t used = strlen(l->all);
    if (used < sizeof l->all - 1)
        snprintf(l->all + used, sizeof l->all - used, "%s\n", msg);
}

/* A sandbox of the guest at path with mem_size bytes of memory, after the
 * argument-less guest function fn was called `calls` times. */
static inline struct sbx_sandbox *tu_sandbox_after(const char *path, uint64_t mem_size,
                                                   const char *fn, int calls)
{
    struct sbx_diag d = { 0 };
    struct sbx_guest *g = NULL;
    struct sbx_sandbox *s = NULL;
    SBX_OPTS(sbx_config, cfg, .mem_size = mem_size, .deadline_ms = 5000);
    if (sbx_guest_load(path, NULL, &g, &d) || sbx_sandbox_create(g, &cfg, &s, &d))
        fail_msg("%s: %s", path, d.msg);
    sbx_guest_free(g);
    for (int i = 0; i < calls; i++)
        if (sbx_sandbox_call(s, fn, NULL, 0, NULL, &d))
            fail_msg("%s: %s", fn, d.msg);
    return s;
}

/* s frozen into a template; s stays the caller's. */
static inline struct sbx_template *tu_template_of(struct sbx_sandbox *s)
{
    struct sbx_diag d = { 0 };
    struct sbx_snapshot *snap = NULL;
    struct sbx_template *t = NULL;
    if (sbx_snapshot_take(s, NULL, &snap, &d) || sbx_template_from_snapshot(snap, &t, &d))
        fail_msg("template: %s", d.msg);
    sbx_snapshot_free(snap);
    return t;
}

#endif
