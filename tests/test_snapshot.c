/* test_snapshot.c - snapshot files as untrusted input, without KVM: a snapshot
 * is encoded by the library's own encoder from a synthetic machine image, then
 * written, mutated, truncated and read back. */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <xxhash.h>

#include "snapshot/snapshot.h"
#include "testutil.h"

#define MEM (4ull << 20)

static char cli_path[512];

/* A snapshot of a made-up 4 MiB machine: a few pages of text, one of
 * incompressible bytes, the rest zero. */
static struct sbx_snapshot *make_snapshot(bool hc)
{
    uint8_t *mem = calloc(1, MEM);
    assert_non_null(mem);
    for (int p = 0; p < 5; p++)
        snprintf((char *)mem + SBX_LAYOUT_IMAGE + p * SBX_PAGE_SIZE, 64, "page %d of the guest", p);
    srand(7);
    for (size_t i = 0; i < SBX_PAGE_SIZE; i++)
        mem[SBX_LAYOUT_HEAP + i] = (uint8_t)rand();
    static struct sbx_vcpu_state st;
    st.regs.rip = SBX_LAYOUT_IMAGE;
    struct sbx_cpu_facts cpu = { .vendor = "AuthenticAMD", .features = { 1, 2, 3, 4 } };
    struct sbx_func funcs[2] = {
        { .name = "add", .ret_type = SBX_T_I32, .nargs = 2, .arg_types = { SBX_T_I32, SBX_T_I32 } },
        { .name = "hello", .ret_type = SBX_T_STR, .nargs = 0 },
    };
    struct sbx_snap_input in = { .mem = mem, .mem_size = MEM, .state = &st, .cpu = &cpu,
                                 .funcs = funcs, .nfuncs = 2, .hc = hc };
    sbx_host_version(&in.guest_version);
    in.guest_has_note = true;
    struct sbx_snapshot *snap = calloc(1, sizeof *snap);
    snap->path = strdup("(memory)");
    struct sbx_diag d = { 0 };
    assert_int_equal(sbx_snap_encode(&in, snap, &d), 0);
    free(mem);
    return snap;
}

static const char *write_snapshot(const char *name)
{
    struct sbx_snapshot *snap = make_snapshot(false);
    const char *path = tu_path(name);
    struct sbx_diag d = { 0 };
    assert_int_equal(sbx_snapshot_write(snap, path, &d), 0);
    sbx_snapshot_free(snap);
    return path;
}

static int open_bytes(const uint8_t *buf, size_t len, const char *name, struct sbx_diag *d)
{
    const char *path = tu_path(name);
    tu_write(path, buf, len);
    struct sbx_snapshot *snap = NULL;
    int rc = sbx_snapshot_open(path, NULL, &snap, d);
    if (rc == 0)
        rc = sbx_snapshot_verify(snap, d);
    sbx_snapshot_free(snap);
    return rc;
}

static void rehash(uint8_t *buf)
{
    struct sbx_snap_header *h = (struct sbx_snap_header *)buf;
    h->header_xxh3 = sbx_snap_header_hash(h);
}

static void test_round_trip_through_file(void **state)
{
    (void)state;
    for (int hc = 0; hc < 2; hc++) {
        struct sbx_snapshot *snap = make_snapshot(hc);
        const char *path = tu_path(hc ? "hc.snap" : "lz4.snap");
        struct sbx_diag d = { 0 };
        assert_int_equal(sbx_snapshot_write(snap, path, &d), 0);
        struct sbx_snapshot *back = NULL;
        assert_int_equal(sbx_snapshot_open(path, NULL, &back, &d), 0);
        assert_int_equal(sbx_snapshot_verify(back, &d), 0);
        assert_int_equal(back->size, snap->size);
        assert_memory_equal(back->image, snap->image, snap->size);
        SBX_OPTS(sbx_snapshot_info, info);
        assert_int_equal(sbx_snapshot_info(back, &info, &d), 0);
        assert_int_equal(info.nonzero_pages, 6); /* zero pages are not stored */
        assert_int_equal(info.nchunks, 2);
        assert_int_equal(info.hc, hc);
        assert_true(info.file_size < sizeof(struct sbx_snap_header) + 2 * SBX_PAGE_SIZE);
        SBX_OPTS(sbx_func_info, f);
        assert_int_equal(sbx_snapshot_function(back, 0, &f, &d), 0);
        assert_string_equal(f.name, "add");
        assert_int_equal(f.args[1], SBX_T_I32);
        /* the incompressible page is stored raw */
        assert_true(back->index[1].flags & SBX_SNAP_CHUNK_RAW);
        uint8_t page[SBX_PAGE_SIZE * SBX_SNAP_CHUNK_MAX_PAGES];
        assert_int_equal(sbx_snap_decode_chunk(back, 0, page, &d), 0);
        assert_string_equal((char *)page, "page 0 of the guest");
        sbx_snapshot_free(back);
        sbx_snapshot_free(snap);
    }
}

/* A template holds exactly the snapshot's memory, in a memfd nobody can
 * change; a corrupt file never becomes one. No KVM is needed for this. */
static void test_template_is_sealed_copy(void **state)
{
    (void)state;
    const char *path = write_snapshot("tpl.snap");
    struct sbx_template *t = NULL;
    struct sbx_diag d = { 0 };
    assert_int_equal(sbx_template_open(path, NULL, &t, &d), 0);
    assert_int_equal(sbx_template_mem_size(t), MEM);
    assert_string_equal((const char *)t->mem + SBX_LAYOUT_IMAGE + SBX_PAGE_SIZE, "page 1 of the guest");
    static const uint8_t zero[SBX_PAGE_SIZE];
    assert_memory_equal(t->mem + SBX_LAYOUT_IMAGE + 5 * SBX_PAGE_SIZE, zero, SBX_PAGE_SIZE);
    assert_int_equal(t->nruns, 2);
    assert_true(sbx_template_page_stored(t, SBX_LAYOUT_HEAP / SBX_PAGE_SIZE));
    assert_false(sbx_template_page_stored(t, SBX_LAYOUT_HEAP / SBX_PAGE_SIZE + 1));
    int seals = fcntl(t->memfd, F_GET_SEALS);
    assert_true((seals & (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) ==
                (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));
    assert_true(mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_SHARED, t->memfd, 0) == MAP_FAILED);
    assert_int_equal(errno, EPERM);
    assert_true(pwrite(t->memfd, "x", 1, 0) < 0);
    assert_true(ftruncate(t->memfd, 0) < 0);
    sbx_template_free(t);

    size_t len;
    uint8_t *buf = tu_read(path, &len);
    buf[len - 1] ^= 0x40; /* last chunk byte */
    const char *bad = tu_path("tpl-corrupt.snap");
    tu_write(bad, buf, len);
    assert_int_equal(sbx_template_open(bad, NULL, &t, &d), SBX_E_SNAP_CORRUPT);
    tu_assert_contains(d.msg, bad);
    tu_assert_contains(d.msg, "checksum mismatch");
    free(buf);
}

struct field_case {
    const char *name;
    void (*mutate)(struct sbx_snap_header *h);
    int code;
    const char *msg;
};

static void m_magic(struct sbx_snap_header *h) { h->prefix.magic[0] = 'X'; }
static void m_format(struct sbx_snap_header *h) { h->prefix.format = 2; }
static void m_header_size(struct sbx_snap_header *h) { h->prefix.header_size = 64; }
static void m_host_major(struct sbx_snap_header *h) { h->host.major = 7; snprintf(h->host.string, 32, "7.%u.%u", h->host.minor, h->host.patch); }
static void m_host_abi(struct sbx_snap_header *h) { h->host.abi = 9; }
static void m_layout(struct sbx_snap_header *h) { h->layout_abi = 9; }
static void m_mem(struct sbx_snap_header *h) { h->mem_size = 3ull << 20; }
static void m_mem_huge(struct sbx_snap_header *h) { h->mem_size = 1ull << 40; }
static void m_file_size(struct sbx_snap_header *h) { h->file_size += 1; }
static void m_nfuncs(struct sbx_snap_header *h) { h->nfuncs = 1000; }
static void m_nchunks(struct sbx_snap_header *h) { h->nchunks = 5; }
static void m_compression(struct sbx_snap_header *h) { h->compression = 9; }
static void m_xsave(struct sbx_snap_header *h) { h->xsave_size = 1 << 20; }
static void m_func_name(struct sbx_snap_header *h) { memset(h->funcs[0].name, 'a', SBX_SNAP_NAME_MAX); }
static void m_func_type(struct sbx_snap_header *h) { h->funcs[0].args[0] = 99; }
static void m_index_off(struct sbx_snap_header *h) { h->index_offset = 1ull << 62; }
static void m_data_off(struct sbx_snap_header *h) { h->data_offset = UINT64_MAX - 3; }
static void m_index_hash(struct sbx_snap_header *h) { h->index_xxh3 ^= 1; }
static void m_pages(struct sbx_snap_header *h) { h->nonzero_pages = 7; }

/* Each header field, changed with a valid header checksum: rejected with its message. */
static void test_header_fields_rejected(void **state)
{
    (void)state;
    struct sbx_version host;
    sbx_host_version(&host);
    const struct field_case cases[] = {
        { "magic", m_magic, SBX_E_SNAP_FORMAT, "bad magic" },
        { "format", m_format, SBX_E_SNAP_FORMAT, "snapshot format 2; this build reads format 1" },
        { "header_size", m_header_size, SBX_E_SNAP_CORRUPT, "header_size 64" },
        { "host version", m_host_major, SBX_E_VERSION, "7.1.0" },
        { "host abi", m_host_abi, SBX_E_VERSION, "abi 9" },
        { "layout", m_layout, SBX_E_SNAP_FORMAT, "memory layout abi 9" },
        { "mem_size", m_mem, SBX_E_SNAP_CORRUPT, "mem_size 3145728" },
        { "mem_size huge", m_mem_huge, SBX_E_SNAP_CORRUPT, "mem_size" },
        { "file_size", m_file_size, SBX_E_SNAP_CORRUPT, "truncated or extended" },
        { "nfuncs", m_nfuncs, SBX_E_SNAP_CORRUPT, "nfuncs 1000" },
        { "nchunks", m_nchunks, SBX_E_SNAP_CORRUPT, "do not tile" },
        { "compression", m_compression, SBX_E_SNAP_CORRUPT, "compression 9" },
        { "xsave", m_xsave, SBX_E_SNAP_CORRUPT, "xsave_size" },
        { "func name", m_func_name, SBX_E_SNAP_CORRUPT, "function 0" },
        { "func type", m_func_type, SBX_E_SNAP_CORRUPT, "function 0" },
        { "index offset", m_index_off, SBX_E_SNAP_CORRUPT, "do not tile" },
        { "data offset", m_data_off, SBX_E_SNAP_CORRUPT, "do not tile" },
        { "index checksum", m_index_hash, SBX_E_SNAP_CORRUPT, "index checksum" },
        { "nonzero pages", m_pages, SBX_E_SNAP_CORRUPT, "header says 7 pages" },
    };
    struct sbx_snapshot *snap = make_snapshot(false);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *buf = malloc(snap->size);
        memcpy(buf, snap->image, snap->size);
        cases[i].mutate((struct sbx_snap_header *)buf);
        rehash(buf);
        struct sbx_diag d = { 0 };
        int rc = open_bytes(buf, snap->size, "field.snap", &d);
        if (rc != cases[i].code)
            fail_msg("%s: expected %d, got %d: %s", cases[i].name, cases[i].code, rc, d.msg);
        tu_assert_contains(d.msg, cases[i].msg);
        tu_assert_contains(d.msg, "field.snap");
        free(buf);
    }
    /* the host version message names both versions */
    uint8_t *buf = malloc(snap->size);
    memcpy(buf, snap->image, snap->size);
    m_host_major((struct sbx_snap_header *)buf);
    rehash(buf);
    struct sbx_diag d = { 0 };
    assert_int_equal(open_bytes(buf, snap->size, "v.snap", &d), SBX_E_VERSION);
    tu_assert_contains(d.msg, host.string);
    free(buf);
    sbx_snapshot_free(snap);
}

/* A mismatched header is rejected from the header alone: the rest of the file
 * is missing entirely, yet the error is the version, not the truncation. */
static void test_rejected_from_header_alone(void **state)
{
    (void)state;
    struct sbx_snapshot *snap = make_snapshot(false);
    struct sbx_snap_header h;
    memcpy(&h, snap->image, sizeof h);
    h.host.patch = 77;
    snprintf(h.host.string, sizeof h.host.string, "%u.%u.77", h.host.major, h.host.minor);
    h.file_size = sizeof h;
    h.header_xxh3 = sbx_snap_header_hash(&h);
    struct sbx_diag d = { 0 };
    assert_int_equal(open_bytes((uint8_t *)&h, sizeof h, "header-only.snap", &d), SBX_E_VERSION);
    tu_assert_contains(d.msg, ".77");

    /* and a good header with garbage after it is readable header-only (info) */
    const char *path = tu_path("garbage-body.snap");
    uint8_t *buf = malloc(snap->size);
    memcpy(buf, snap->image, snap->size);
    memset(buf + sizeof h, 0xee, snap->size - sizeof h);
    tu_write(path, buf, snap->size);
    struct sbx_snapshot *hdr_only = NULL;
    assert_int_equal(sbx_snapshot_open_header(path, NULL, &hdr_only, &d), 0);
    struct sbx_sandbox *s = NULL;
    assert_int_equal(sbx_sandbox_restore(hdr_only, NULL, &s, &d), SBX_E_INVAL);
    sbx_snapshot_free(hdr_only);
    assert_int_equal(sbx_snapshot_open(path, NULL, &hdr_only, &d), SBX_E_SNAP_CORRUPT);
    free(buf);
    sbx_snapshot_free(snap);
}

static void test_every_header_byte_flipped(void **state)
{
    (void)state;
    struct sbx_snapshot *snap = make_snapshot(false);
    uint8_t *buf = malloc(snap->size);
    const char *path = tu_path("flip.snap");
    for (size_t off = 0; off < sizeof(struct sbx_snap_header); off++) {
        memcpy(buf, snap->image, snap->size);
        buf[off] ^= 0x5a;
        tu_write(path, buf, snap->size);
        struct sbx_snapshot *s = NULL;
        struct sbx_diag d = { 0 };
        int rc = sbx_snapshot_open(path, NULL, &s, &d);
        if (rc >= 0)
            fail_msg("header byte %zu flipped: accepted", off);
        if (rc != SBX_E_SNAP_CORRUPT && rc != SBX_E_SNAP_FORMAT)
            fail_msg("header byte %zu flipped: code %d (%s)", off, rc, d.msg);
    }
    free(buf);
    sbx_snapshot_free(snap);
}

static void test_index_and_chunk_bytes_flipped(void **state)
{
    (void)state;
    struct sbx_snapshot *snap = make_snapshot(false);
    uint8_t *buf = malloc(snap->size);
    size_t start = sizeof(struct sbx_snap_header);
    for (size_t off = start; off < snap->size; off += 7) {
        memcpy(buf, snap->image, snap->size);
        buf[off] ^= 0x01;
        struct sbx_diag d = { 0 };
        int rc = open_bytes(buf, snap->size, "body.snap", &d);
        if (rc != SBX_E_SNAP_CORRUPT)
            fail_msg("byte %zu flipped: code %d (%s)", off, rc, d.msg);
        tu_assert_contains(d.msg, "checksum");
    }
    free(buf);
    sbx_snapshot_free(snap);
}

/* Chunks that overlap, run out of memory or decompress to the wrong size are
 * caught by the index checks even when every checksum is made to match. */
static void test_hostile_index(void **state)
{
    (void)state;
    struct sbx_snapshot *snap = make_snapshot(false);
    for (int kind = 0; kind < 4; kind++) {
        uint8_t *buf = malloc(snap->size);
        memcpy(buf, snap->image, snap->size);
        struct sbx_snap_header *h = (struct sbx_snap_header *)buf;
        struct sbx_snap_chunk *c = (struct sbx_snap_chunk *)(buf + h->index_offset);
        const char *want = "chunk 1";
        switch (kind) {
        case 0: c[1].gpa = c[0].gpa; break;                          /* overlap */
        case 1: c[1].gpa = h->mem_size - SBX_PAGE_SIZE / 2; break;   /* outside, unaligned */
        case 2: /* wrong decompressed size, consistent everywhere else */
            c[0].raw_size += SBX_PAGE_SIZE;
            h->nonzero_pages++;
            want = "decompresses to";
            break;
        case 3: c[1].comp_size = 0xffffff00u; break;                 /* past the end */
        }
        h->index_xxh3 = XXH3_64bits(c, h->nchunks * sizeof *c);
        rehash(buf);
        struct sbx_diag d = { 0 };
        int rc = open_bytes(buf, snap->size, "index.snap", &d);
        if (rc != SBX_E_SNAP_CORRUPT)
            fail_msg("index case %d: code %d (%s)", kind, rc, d.msg);
        tu_assert_contains(d.msg, want);
        free(buf);
    }
    sbx_snapshot_free(snap);
}

static void test_truncated_at_many_lengths(void **state)
{
    (void)state;
    struct sbx_snapshot *snap = make_snapshot(false);
    for (size_t len = 0; len < snap->size; len += (len < 64 ? 1 : 97)) {
        struct sbx_diag d = { 0 };
        int rc = open_bytes(snap->image, len, "trunc.snap", &d);
        if (rc != SBX_E_SNAP_CORRUPT && rc != SBX_E_SNAP_FORMAT)
            fail_msg("truncated to %zu: code %d (%s)", len, rc, d.msg);
    }
    sbx_snapshot_free(snap);
}

static void test_not_files(void **state)
{
    (void)state;
    struct sbx_snapshot *s = NULL;
    struct sbx_diag d = { 0 };
    assert_int_equal(sbx_snapshot_open("/nonexistent.snap", NULL, &s, &d), SBX_E_IO);
    tu_assert_contains(d.msg, "/nonexistent.snap: cannot open");
    assert_int_equal(sbx_snapshot_open("/tmp", NULL, &s, &d), SBX_E_IO);
    assert_int_equal(sbx_snapshot_open("/bin/true", NULL, &s, &d), SBX_E_SNAP_FORMAT);
    tu_assert_contains(d.msg, "bad magic");
}

static void test_write_is_atomic(void **state)
{
    (void)state;
    struct sbx_snapshot *snap = make_snapshot(false);
    struct sbx_diag d = { 0 };
    /* a directory that does not exist: error, nothing created */
    assert_int_equal(sbx_snapshot_write(snap, "/nonexistent-dir/x.snap", &d), SBX_E_IO);
    tu_assert_contains(d.msg, "/nonexistent-dir/x.snap");
    /* replacing an existing file leaves the complete new one and no temporaries */
    const char *path = tu_path("atomic.snap");
    tu_write(path, "old", 3);
    assert_int_equal(sbx_snapshot_write(snap, path, &d), 0);
    size_t size;
    uint8_t *buf = tu_read(path, &size);
    assert_int_equal(size, snap->size);
    free(buf);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "ls '%s'.tmp.* >/dev/null 2>&1", path);
    assert_int_not_equal(system(cmd), 0);
    sbx_snapshot_free(snap);
}

static void test_cli_info_and_verify(void **state)
{
    (void)state;
    const char *path = write_snapshot("cli.snap");
    char cmd[1400], out[4096] = "";
    snprintf(cmd, sizeof cmd, "%s info '%s'", cli_path, path);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    struct sbx_version host;
    sbx_host_version(&host);
    tu_assert_contains(out, host.string);
    tu_assert_contains(out, "add(i32, i32) -> i32");
    tu_assert_contains(out, "hello() -> str");
    snprintf(cmd, sizeof cmd, "%s verify '%s' >/dev/null", cli_path, path);
    assert_int_equal(system(cmd), 0);

    /* a corrupt file: distinct exit code, clear message */
    size_t size;
    uint8_t *buf = tu_read(path, &size);
    buf[size - 1] ^= 0xff;
    tu_write(path, buf, size);
    free(buf);
    snprintf(cmd, sizeof cmd, "%s verify '%s' 2>/dev/null", cli_path, path);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 17);
}

/* The caller's limits on untrusted files: each a clear SBX_E_LIMIT naming the file. */
static void test_open_limits(void **state)
{
    (void)state;
    const char *path = write_snapshot("limits.snap");
    struct sbx_snapshot *snap = NULL;
    struct sbx_diag d = { 0 };
    SBX_OPTS(sbx_snapshot_open_opts, o, .max_file_size = 4096);
    assert_int_equal(sbx_snapshot_open(path, &o, &snap, &d), SBX_E_LIMIT);
    tu_assert_contains(d.msg, path);
    tu_assert_contains(d.msg, "over the limit of 4096 bytes");
    o = (struct sbx_snapshot_open_opts){ .sz = sizeof(struct sbx_snapshot_open_opts), .max_chunks = 1 };
    assert_int_equal(sbx_snapshot_open_header(path, &o, &snap, &d), SBX_E_LIMIT);
    tu_assert_contains(d.msg, "chunks, over the limit of 1 (max_chunks)");
    o.max_chunks = 2; /* the made-up machine has exactly two runs of pages */
    assert_int_equal(sbx_snapshot_open(path, &o, &snap, &d), 0);
    sbx_snapshot_free(snap);
    /* the same checks on bytes in memory */
    size_t len;
    uint8_t *buf = tu_read(path, &len);
    o.max_chunks = 1;
    assert_int_equal(sbx_snapshot_from_memory(buf, len, "buf", &o, &snap, &d), SBX_E_LIMIT);
    assert_int_equal(sbx_snapshot_from_memory(buf, len, "buf", NULL, &snap, &d), 0);
    sbx_snapshot_free(snap);
    buf[len - 1] ^= 1;
    assert_int_equal(sbx_snapshot_from_memory(buf, len, "buf", NULL, &snap, &d), SBX_E_SNAP_CORRUPT);
    free(buf);
}

int main(int argc, char **argv)
{
    const char *build = tu_build_dir(argc, argv);
    snprintf(cli_path, sizeof cli_path, "%s/snapbox", build);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_through_file),
        cmocka_unit_test(test_open_limits),
        cmocka_unit_test(test_template_is_sealed_copy),
        cmocka_unit_test(test_header_fields_rejected),
        cmocka_unit_test(test_rejected_from_header_alone),
        cmocka_unit_test(test_every_header_byte_flipped),
        cmocka_unit_test(test_index_and_chunk_bytes_flipped),
        cmocka_unit_test(test_hostile_index),
        cmocka_unit_test(test_truncated_at_many_lengths),
        cmocka_unit_test(test_not_files),
        cmocka_unit_test(test_write_is_atomic),
        cmocka_unit_test(test_cli_info_and_verify),
    };
    return cmocka_run_group_tests_name("snapshot-files", tests, NULL, NULL);
}
