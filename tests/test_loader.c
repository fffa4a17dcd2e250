/* test_loader.c - the ELF loader and the version policy, on real guests built
 * by `make` and on mutated copies of them. Runs natively (no KVM needed). */
#include <elf.h>
#include <sys/wait.h>

#include "sbx_abi.h"
#include "testutil.h"

static char demo_path[512], plain_path[512], cli_path[512];

struct elf_copy {
    uint8_t *buf;
    size_t size;
};

static struct elf_copy demo_copy(void)
{
    struct elf_copy c;
    c.buf = tu_read(demo_path, &c.size);
    return c;
}

static Elf64_Ehdr *ehdr(struct elf_copy *c) { return (Elf64_Ehdr *)c->buf; }

static Elf64_Phdr *phdr(struct elf_copy *c, uint32_t type, int nth)
{
    Elf64_Phdr *ph = (Elf64_Phdr *)(c->buf + ehdr(c)->e_phoff);
    for (int i = 0; i < ehdr(c)->e_phnum; i++)
        if (ph[i].p_type == type && nth-- == 0)
            return &ph[i];
    fail_msg("no program header of type %u", type);
    return NULL;
}

static struct sbx_note_version_desc *note_desc(struct elf_copy *c)
{
    Elf64_Phdr *note = phdr(c, PT_NOTE, 0);
    return (struct sbx_note_version_desc *)(c->buf + note->p_offset + 12 + SBX_NOTE_OWNER_SIZE);
}

static void set_version(struct elf_copy *c, uint32_t major, uint32_t minor, uint32_t patch)
{
    struct sbx_note_version_desc *d = note_desc(c);
    d->major = major;
    d->minor = minor;
    d->patch = patch;
    memset(d->version, 0, sizeof d->version);
    snprintf(d->version, sizeof d->version, "%u.%u.%u", major, minor, patch);
}

/* Write the copy to a file and load it; frees the copy. */
static int load_copy(struct elf_copy *c, const char *name, const struct sbx_load_opts *opts,
                     struct sbx_diag *diag)
{
    const char *path = tu_path(name);
    tu_write(path, c->buf, c->size);
    free(c->buf);
    struct sbx_guest *g = NULL;
    int rc = sbx_guest_load(path, opts, &g, diag);
    if (rc == 0)
        sbx_guest_free(g);
    else
        tu_assert_contains(diag->msg, name); /* every error names the file */
    return rc;
}

static void expect_reject(struct elf_copy *c, const char *name, int code, const char *detail)
{
    struct sbx_diag diag = { 0 };
    assert_int_equal(load_copy(c, name, NULL, &diag), code);
    assert_int_equal(diag.code, code);
    tu_assert_contains(diag.msg, detail);
}

static void test_demo_accepted(void **state)
{
    (void)state;
    struct sbx_diag diag = { 0 };
    struct sbx_guest *g = NULL;
    assert_int_equal(sbx_guest_load(demo_path, NULL, &g, &diag), 0);
    struct sbx_version gv, host;
    sbx_host_version(&host);
    assert_int_equal(sbx_guest_note(g, &gv), SBX_NOTE_FROM_PHDR);
    assert_string_equal(gv.string, host.string);
    assert_int_equal(gv.abi, SBX_ABI_VERSION);
    assert_int_equal(sbx_guest_entry(g), SBX_LAYOUT_IMAGE);
    assert_true(sbx_guest_segment_count(g) >= 2);
    sbx_guest_free(g);
}

static void test_other_version_rejected_naming_both(void **state)
{
    (void)state;
    struct elf_copy c = demo_copy();
    struct sbx_version host;
    sbx_host_version(&host);
    set_version(&c, host.major + 1, host.minor, host.patch);
    char guest_v[32];
    snprintf(guest_v, sizeof guest_v, "%u.%u.%u", host.major + 1, host.minor, host.patch);
    struct sbx_diag diag = { 0 };
    assert_int_equal(load_copy(&c, "newer.elf", NULL, &diag), SBX_E_VERSION);
    tu_assert_contains(diag.msg, guest_v);
    tu_assert_contains(diag.msg, host.string);
}

static void test_other_abi_rejected(void **state)
{
    (void)state;
    struct elf_copy c = demo_copy();
    note_desc(&c)->abi = SBX_ABI_VERSION + 1;
    expect_reject(&c, "abi.elf", SBX_E_VERSION, "abi 2");
}

static void run_ok(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("command failed (%d): %s", rc, cmd);
}

static void test_stripped_still_checked(void **state)
{
    (void)state;
    char cmd[2048];
    const char *stripped = tu_path("stripped.elf");
    snprintf(cmd, sizeof cmd, "strip --strip-all -o '%s' '%s'", stripped, demo_path);
    run_ok(cmd);
    struct sbx_guest *g = NULL;
    struct sbx_diag diag = { 0 };
    assert_int_equal(sbx_guest_load(stripped, NULL, &g, &diag), 0);
    assert_int_equal(sbx_guest_note(g, NULL), SBX_NOTE_FROM_PHDR);
    sbx_guest_free(g);

    /* A stripped guest of another version is still rejected. */
    struct elf_copy c = demo_copy();
    set_version(&c, 9, 9, 9);
    const char *bad = tu_path("bad-unstripped.elf");
    tu_write(bad, c.buf, c.size);
    free(c.buf);
    const char *bad_stripped = tu_path("bad-stripped.elf");
    snprintf(cmd, sizeof cmd, "strip --strip-all -o '%s' '%s'", bad_stripped, bad);
    run_ok(cmd);
    assert_int_equal(sbx_guest_load(bad_stripped, NULL, &g, &diag), SBX_E_VERSION);
    tu_assert_contains(diag.msg, "9.9.9");
}

static void zero_section_headers(struct elf_copy *c)
{
    ehdr(c)->e_shoff = 0;
    ehdr(c)->e_shnum = 0;
    ehdr(c)->e_shstrndx = 0;
}

static void test_no_section_headers_checked_through_pt_note(void **state)
{
    (void)state;
    struct elf_copy c = demo_copy();
    zero_section_headers(&c);
    const char *path = tu_path("noshdr.elf");
    tu_write(path, c.buf, c.size);
    struct sbx_guest *g = NULL;
    struct sbx_diag diag = { 0 };
    assert_int_equal(sbx_guest_load(path, NULL, &g, &diag), 0);
    assert_int_equal(sbx_guest_note(g, NULL), SBX_NOTE_FROM_PHDR);
    sbx_guest_free(g);

    set_version(&c, 0, 99, 0);
    expect_reject(&c, "noshdr-bad.elf", SBX_E_VERSION, "0.99.0");
}

static void test_section_fallback(void **state)
{
    (void)state;
    struct elf_copy c = demo_copy();
    phdr(&c, PT_NOTE, 0)->p_type = PT_NULL; /* only the SHT_NOTE section is left */
    const char *path = tu_path("sectiononly.elf");
    tu_write(path, c.buf, c.size);
    free(c.buf);
    struct sbx_guest *g = NULL;
    struct sbx_diag diag = { 0 };
    assert_int_equal(sbx_guest_load(path, NULL, &g, &diag), 0);
    assert_int_equal(sbx_guest_note(g, NULL), SBX_NOTE_FROM_SECTION);
    sbx_guest_free(g);
}

static void test_guest_without_library(void **state)
{
    (void)state;
    struct tu_log log = { 0 };
    SBX_OPTS(sbx_load_opts, opts, .log = tu_log_cb, .log_ctx = &log);
    struct sbx_guest *g = NULL;
    struct sbx_diag diag = { 0 };
    assert_int_equal(sbx_guest_load(plain_path, &opts, &g, &diag), 0);
    assert_int_equal(sbx_guest_note(g, NULL), SBX_NOTE_NONE);
    assert_int_equal(log.count, 1);
    assert_int_equal(log.last_level, SBX_LOG_WARN);
    tu_assert_contains(log.last, "no snapbox version note");
    sbx_guest_free(g);

    opts.require_note = true;
    assert_int_equal(sbx_guest_load(plain_path, &opts, &g, &diag), SBX_E_NO_NOTE);
    tu_assert_contains(diag.msg, "plain.elf");
    tu_assert_contains(diag.msg, "no snapbox version note");
}

static struct sbx_version ver(uint32_t major, uint32_t minor, uint32_t patch)
{
    struct sbx_version v = { .major = major, .minor = minor, .patch = patch, .abi = SBX_ABI_VERSION };
    snprintf(v.string, sizeof v.string, "%u.%u.%u", major, minor, patch);
    return v;
}

static void test_relaxed_policy(void **state)
{
    (void)state;
    struct sbx_diag d = { 0 };
    struct sbx_version host = ver(1, 4, 2);
    struct sbx_version same = ver(1, 4, 2), newer_patch = ver(1, 4, 3), older_patch = ver(1, 4, 1);
    struct sbx_version other_minor = ver(1, 5, 2), other_major = ver(2, 4, 2);
    assert_int_equal(sbx_version_check(&host, &same, SBX_VERSION_RELAXED, "g", &d), 0);
    assert_int_equal(sbx_version_check(&host, &newer_patch, SBX_VERSION_RELAXED, "g", &d), 0);
    assert_int_equal(sbx_version_check(&host, &newer_patch, SBX_VERSION_EXACT, "g", &d), SBX_E_VERSION);
    assert_int_equal(sbx_version_check(&host, &older_patch, SBX_VERSION_RELAXED, "g", &d), SBX_E_VERSION);
    tu_assert_contains(d.msg, "1.4.1");
    tu_assert_contains(d.msg, "1.4.2");
    assert_int_equal(sbx_version_check(&host, &other_minor, SBX_VERSION_RELAXED, "g", &d), SBX_E_VERSION);
    assert_int_equal(sbx_version_check(&host, &other_major, SBX_VERSION_RELAXED, "g", &d), SBX_E_VERSION);
    struct sbx_version other_abi = same;
    other_abi.abi++;
    assert_int_equal(sbx_version_check(&host, &other_abi, SBX_VERSION_RELAXED, "g", &d), SBX_E_VERSION);

    /* On a real file: a newer patch loads under the relaxed policy only. */
    struct sbx_version cur;
    sbx_host_version(&cur);
    struct elf_copy c = demo_copy();
    set_version(&c, cur.major, cur.minor, cur.patch + 1);
    SBX_OPTS(sbx_load_opts, relaxed, .policy = SBX_VERSION_RELAXED);
    assert_int_equal(load_copy(&c, "patch.elf", &relaxed, &d), 0);
    c = demo_copy();
    set_version(&c, cur.major, cur.minor, cur.patch + 1);
    assert_int_equal(load_copy(&c, "patch2.elf", NULL, &d), SBX_E_VERSION);
}

static void test_malformed_note(void **state)
{
    (void)state;
    struct elf_copy c = demo_copy();
    Elf64_Phdr *note = phdr(&c, PT_NOTE, 0);
    uint32_t *nhdr = (uint32_t *)(c.buf + note->p_offset);
    nhdr[0] = 0x1000; /* namesz past the segment */
    expect_reject(&c, "namesz.elf", SBX_E_NOTE, "n_namesz");

    c = demo_copy();
    nhdr = (uint32_t *)(c.buf + phdr(&c, PT_NOTE, 0)->p_offset);
    nhdr[1] = 0xfffffff0u; /* descsz past the segment */
    expect_reject(&c, "descsz.elf", SBX_E_NOTE, "n_descsz");

    c = demo_copy();
    memset(note_desc(&c)->version, 'x', SBX_VERSION_STRING_MAX);
    expect_reject(&c, "unterminated.elf", SBX_E_NOTE, "NUL-terminated");

    c = demo_copy();
    note_desc(&c)->major = 7; /* string still says the host's version */
    expect_reject(&c, "disagree.elf", SBX_E_NOTE, "disagrees");

    c = demo_copy();
    phdr(&c, PT_NOTE, 0)->p_offset = c.size - 4; /* note segment past the end */
    expect_reject(&c, "noteoff.elf", SBX_E_NOTE, "past the end");
}

static void test_empty_random_and_truncated(void **state)
{
    (void)state;
    struct elf_copy c = { .buf = malloc(1), .size = 0 };
    expect_reject(&c, "empty.elf", SBX_E_ELF, "empty file");

    c.size = 4096;
    c.buf = malloc(c.size);
    srand(42);
    for (size_t i = 0; i < c.size; i++)
        c.buf[i] = (uint8_t)rand();
    expect_reject(&c, "random.elf", SBX_E_ELF, "not an ELF file");

    struct elf_copy whole = demo_copy();
    Elf64_Phdr *note = phdr(&whole, PT_NOTE, 0);
    const size_t cuts[] = { 3, 16, 63, 64, 64 + 56, 200, 0x1000 + 5, note->p_offset + 30,
                            whole.size - 1 };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        struct elf_copy t = { .buf = malloc(cuts[i]), .size = cuts[i] };
        memcpy(t.buf, whole.buf, cuts[i]);
        char name[64];
        snprintf(name, sizeof name, "trunc-%zu.elf", cuts[i]);
        struct sbx_diag diag = { 0 };
        int rc = load_copy(&t, name, NULL, &diag);
        if (rc != SBX_E_ELF && rc != SBX_E_NOTE)
            fail_msg("truncated at %zu: rc %d (%s)", cuts[i], rc, diag.msg);
    }
    free(whole.buf);
}

static void test_wrong_kind_of_elf(void **state)
{
    (void)state;
    struct elf_copy c = demo_copy();
    c.buf[EI_CLASS] = ELFCLASS32;
    expect_reject(&c, "elf32.elf", SBX_E_ELF, "ELF64");

    c = demo_copy();
    c.buf[EI_DATA] = ELFDATA2MSB;
    expect_reject(&c, "bigendian.elf", SBX_E_ELF, "little-endian");

    c = demo_copy();
    ehdr(&c)->e_machine = EM_AARCH64;
    expect_reject(&c, "arm.elf", SBX_E_ELF, "e_machine");

    struct sbx_diag diag = { 0 };
    struct sbx_guest *g = NULL;
    assert_int_equal(sbx_guest_load("/bin/true", NULL, &g, &diag), SBX_E_ELF);
    tu_assert_contains(diag.msg, "ET_DYN");
}

static void test_bad_segments(void **state)
{
    (void)state;
    struct elf_copy c = demo_copy();
    phdr(&c, PT_LOAD, 1)->p_vaddr = phdr(&c, PT_LOAD, 0)->p_vaddr;
    phdr(&c, PT_LOAD, 1)->p_offset = phdr(&c, PT_LOAD, 0)->p_offset;
    expect_reject(&c, "overlap.elf", SBX_E_ELF, "overlap");

    c = demo_copy();
    phdr(&c, PT_LOAD, 0)->p_filesz = phdr(&c, PT_LOAD, 0)->p_memsz + 1;
    expect_reject(&c, "filesz.elf", SBX_E_ELF, "p_filesz");

    c = demo_copy();
    phdr(&c, PT_LOAD, 0)->p_offset = 0x7fffffff000ull;
    expect_reject(&c, "offset.elf", SBX_E_ELF, "past the end");

    c = demo_copy();
    phdr(&c, PT_LOAD, 0)->p_offset = UINT64_MAX - 8; /* offset + filesz overflows */
    expect_reject(&c, "offset-wrap.elf", SBX_E_ELF, "past the end");

    c = demo_copy();
    phdr(&c, PT_LOAD, 2)->p_memsz = UINT64_MAX - 0x1000; /* vaddr + memsz wraps */
    expect_reject(&c, "memsz-wrap.elf", SBX_E_ELF, "wraps around");

    c = demo_copy();
    phdr(&c, PT_LOAD, 2)->p_memsz = 1ull << 30; /* past the image range */
    expect_reject(&c, "toobig.elf", SBX_E_ELF, "the guest image is too large");

    c = demo_copy();
    phdr(&c, PT_LOAD, 2)->p_vaddr = 0x1000; /* below the image range */
    expect_reject(&c, "low.elf", SBX_E_ELF, "outside the guest image range");

    c = demo_copy();
    phdr(&c, PT_LOAD, 2)->p_flags = PF_R | PF_W | PF_X;
    expect_reject(&c, "wx.elf", SBX_E_ELF, "both writable and executable");

    c = demo_copy();
    phdr(&c, PT_LOAD, 0)->p_align = 0x1001;
    expect_reject(&c, "align.elf", SBX_E_ELF, "p_align");

    c = demo_copy();
    ehdr(&c)->e_entry = 0x102000; /* data, not code */
    expect_reject(&c, "entry.elf", SBX_E_ELF, "entry point");

    c = demo_copy();
    ehdr(&c)->e_phoff = c.size - 8;
    expect_reject(&c, "phoff.elf", SBX_E_ELF, "program header table");

    c = demo_copy();
    ehdr(&c)->e_shoff = UINT64_MAX - 100;
    expect_reject(&c, "shoff.elf", SBX_E_ELF, "section header table");

    c = demo_copy(); /* libelf would hand out a misaligned table (found by fuzz_elf) */
    ehdr(&c)->e_phoff += 4;
    expect_reject(&c, "phoff-misaligned.elf", SBX_E_ELF, "not 8-byte aligned");
}

static void test_not_a_file(void **state)
{
    (void)state;
    struct sbx_diag diag = { 0 };
    struct sbx_guest *g = NULL;
    assert_int_equal(sbx_guest_load("/tmp", NULL, &g, &diag), SBX_E_IO);
    tu_assert_contains(diag.msg, "/tmp: is a directory");
    assert_int_equal(sbx_guest_load("/nonexistent/guest.elf", NULL, &g, &diag), SBX_E_IO);
    tu_assert_contains(diag.msg, "/nonexistent/guest.elf: cannot open");
    assert_null(g);
}

/* `snapbox inspect`: 0 and the version on a good guest; 5 and both versions on a mismatch. */
static void test_cli_inspect(void **state)
{
    (void)state;
    char cmd[2048], out[4096] = "";
    struct sbx_version host;
    sbx_host_version(&host);
    snprintf(cmd, sizeof cmd, "%s inspect '%s'", cli_path, demo_path);
    FILE *p = popen(cmd, "r");
    out[fread(out, 1, sizeof out - 1, p)] = '\0';
    assert_int_equal(pclose(p), 0);
    tu_assert_contains(out, "guest:     snapbox ");
    tu_assert_contains(out, host.string);
    tu_assert_contains(out, "verdict:   accepted");

    struct elf_copy c = demo_copy();
    set_version(&c, 3, 2, 1);
    const char *bad = tu_path("cli-bad.elf");
    tu_write(bad, c.buf, c.size);
    free(c.buf);
    snprintf(cmd, sizeof cmd, "%s inspect '%s' 2>&1 >/dev/null", cli_path, bad);
    p = popen(cmd, "r");
    out[fread(out, 1, sizeof out - 1, p)] = '\0';
    int rc = pclose(p);
    assert_true(WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 5);
    tu_assert_contains(out, "3.2.1");
    tu_assert_contains(out, host.string);
}

static void test_strerror_covers_every_code(void **state)
{
    (void)state;
    for (int code = 0; code >= SBX_E_ERROR_MIN_; code--)
        assert_string_not_equal(sbx_strerror(code), "unknown error");
    assert_string_equal(sbx_strerror(1), "unknown error");
}

int main(int argc, char **argv)
{
    const char *build = tu_build_dir(argc, argv);
    snprintf(demo_path, sizeof demo_path, "%s/guests/demo.elf", build);
    snprintf(plain_path, sizeof plain_path, "%s/guests/plain.elf", build);
    snprintf(cli_path, sizeof cli_path, "%s/snapbox", build);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_accepted),
        cmocka_unit_test(test_other_version_rejected_naming_both),
        cmocka_unit_test(test_other_abi_rejected),
        cmocka_unit_test(test_stripped_still_checked),
        cmocka_unit_test(test_no_section_headers_checked_through_pt_note),
        cmocka_unit_test(test_section_fallback),
        cmocka_unit_test(test_guest_without_library),
        cmocka_unit_test(test_relaxed_policy),
        cmocka_unit_test(test_malformed_note),
        cmocka_unit_test(test_empty_random_and_truncated),
        cmocka_unit_test(test_wrong_kind_of_elf),
        cmocka_unit_test(test_bad_segments),
        cmocka_unit_test(test_not_a_file),
        cmocka_unit_test(test_cli_inspect),
        cmocka_unit_test(test_strerror_covers_every_code),
    };
    return cmocka_run_group_tests_name("loader", tests, NULL, NULL);
}
