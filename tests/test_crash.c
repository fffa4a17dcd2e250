/* test_crash.c - crash safety of `snapbox create` against real KVM: killed
 * (SIGKILL) at every step of writing the snapshot, the destination holds the
 * old file or the complete new one; on a full disk it fails clearly and
 * leaves nothing. usage: test_crash GUEST_DIR SNAPBOX_CLI CRASHSHIM_SO
 * (tests/run-kvm.sh runs it natively or inside the KVM VM). */
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "snapshot/snapshot.h"
#include "testutil.h"

static char guest_dir[512], cli[512], shim[512];

/* mem_size of the snapshot at path, or 0 if it is not a complete, valid one. */
static uint64_t snapshot_mem(const char *path)
{
    struct sbx_snapshot *snap = NULL;
    struct sbx_diag d = { 0 };
    uint64_t mem = 0;
    if (sbx_snapshot_open(path, NULL, &snap, &d) == 0 && sbx_snapshot_verify(snap, &d) == 0)
        mem = snap->hdr->mem_size;
    sbx_snapshot_free(snap);
    return mem;
}

static bool killed(int status)
{
    /* the shell either execs snapbox (signalled) or reports 128 + SIGKILL */
    return (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
           (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGKILL);
}

/* Every file in dir other than out.snap must be a complete snapshot left in
 * the instant between naming and renaming; remove them. Returns how many. */
static int check_leftovers(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        if (strcmp(e->d_name, "out.snap") == 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (!snapshot_mem(path))
            fail_msg("partial file left behind: %s", path);
        unlink(path);
        n++;
    }
    closedir(d);
    return n;
}

static void test_create_killed_at_every_step(void **state)
{
    (void)state;
    char dir[] = "/tmp/snapbox-crash.XXXXXX", out[600], cmd[4096];
    assert_non_null(mkdtemp(dir));
    snprintf(out, sizeof out, "%s/out.snap", dir);
    snprintf(cmd, sizeof cmd, "%s create %s/demo.elf -o %s --mem 16M >/dev/null 2>&1", cli,
             guest_dir, out);
    assert_int_equal(system(cmd), 0);
    size_t old_len;
    uint8_t *old = tu_read(out, &old_len);
    int kills = 0, kept_old = 0, got_new = 0, leftovers = 0;
    for (int step = 1; step < 2000; step++) {
        snprintf(cmd, sizeof cmd, "SBX_CRASH_AT=%d LD_PRELOAD=%s %s create %s/demo.elf -o %s "
                 ">/dev/null 2>&1", step, shim, cli, guest_dir, out);
        int status = system(cmd);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            break; /* past the last step: the write completed */
        if (!killed(status))
            fail_msg("step %d: create ended with status 0x%x, not by SIGKILL", step, status);
        kills++;
        size_t len;
        uint8_t *now = tu_read(out, &len);
        if (len == old_len && memcmp(now, old, len) == 0)
            kept_old++;
        else if (snapshot_mem(out) == SBX_DEFAULT_MEM_SIZE) {
            got_new++;
            tu_write(out, old, old_len); /* later steps must find the old file again */
        } else
            fail_msg("step %d: %s is neither the old file nor the complete new one", step, out);
        free(now);
        leftovers += check_leftovers(dir);
    }
    /* many distinct points, on both sides of the rename that commits the file */
    if (kills < 20 || kept_old == 0 || got_new == 0)
        fail_msg("only %d kill points (%d kept the old file, %d found the new one)", kills,
                 kept_old, got_new);
    assert_true(leftovers <= 1); /* at most the one step between naming and rename */
    assert_int_equal(snapshot_mem(out), SBX_DEFAULT_MEM_SIZE);
    assert_int_equal(check_leftovers(dir), 0);
    free(old);
    unlink(out);
    rmdir(dir);
}

/* A file system too small for the header: a clear I/O error naming the file
 * and the cause, exit code 3, and nothing left on it. */
static void test_create_on_full_disk(void **state)
{
    (void)state;
    char dir[] = "/tmp/snapbox-full.XXXXXX", cmd[8192], res[64], mnt[64];
    assert_non_null(mkdtemp(dir));
    snprintf(mnt, sizeof mnt, "%s/mnt", dir);
    snprintf(res, sizeof res, "%s/res", dir);
    assert_int_equal(mkdir(mnt, 0755), 0);
    assert_int_equal(mkdir(res, 0755), 0);
    char inner[6000];
    snprintf(inner, sizeof inner,
             "mount -t tmpfs -o size=8k snapbox-full %s && { %s create %s/demo.elf -o %s/out.snap "
             "2>%s/err; echo $? >%s/rc; ls -A %s >%s/ls; umount %s; }",
             mnt, cli, guest_dir, mnt, res, res, mnt, res, mnt);
    if (getuid() == 0) /* the KVM VM: root can mount */
        snprintf(cmd, sizeof cmd, "%s", inner);
    else /* a user and mount namespace of our own */
        snprintf(cmd, sizeof cmd, "unshare -rm sh -c '%s'", inner);
    assert_int_equal(system(cmd), 0);
    char path[800];
    size_t n;
    snprintf(path, sizeof path, "%s/rc", res);
    char *rc = (char *)tu_read(path, &n);
    rc[n] = '\0';
    assert_string_equal(rc, "3\n"); /* the CLI's exit code for file I/O */
    snprintf(path, sizeof path, "%s/err", res);
    char *err = (char *)tu_read(path, &n);
    err[n] = '\0';
    tu_assert_contains(err, "out.snap");
    tu_assert_contains(err, "No space left on device");
    snprintf(path, sizeof path, "%s/ls", res);
    free(tu_read(path, &n));
    assert_int_equal(n, 0); /* nothing left behind */
    free(rc);
    free(err);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: test_crash GUEST_DIR SNAPBOX_CLI CRASHSHIM_SO\n");
        return 2;
    }
    snprintf(guest_dir, sizeof guest_dir, "%s", argv[1]);
    snprintf(cli, sizeof cli, "%s", argv[2]);
    snprintf(shim, sizeof shim, "%s", argv[3]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_killed_at_every_step),
        cmocka_unit_test(test_create_on_full_disk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
