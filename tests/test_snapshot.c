/* test_snapshot.c - snapshot files as untrusted input, without KVM: a snapshot
 * is encoded by the library's own encoder from a synthetic machine image, then
 * written, mutated, truncated and read back. */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <xxhash.h>

#include "fuzz/snapfix.h"
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
    snapfix_vcpu_state(&st);
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

static uint8_t *copy_of(const struct sbx_snapshot *snap)
{
    uint8_t *buf = malloc(snap->size);
    assert_non_null(buf);
    memcpy(buf, snap->image, snap->size);
    return buf;
}

/* The payload of the section of type in buf, and its length. */
static uint8_t *section(uint8_t *buf, uint32_t type, uint64_t *len)
{
    struct sbx_snap_header *h = (struct sbx_snap_header *)buf;
    uint64_t off = h->sections_offset;
    for (uint32_t i = 0; i < h->nsections; i++) {
        struct sbx_snap_section sec;
        memcpy(&sec, buf + off, sizeof sec);
        if (sec.type == type) {
            *len = sec.length;
            return buf + off + sizeof sec;
        }
        off += sbx_snap_section_size(sec.length);
    }
    fail_msg("no section of type %u", type);
    return NULL;
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
        assert_int_equal(sbx_snapshot_info(back, &info, NULL), 0);
        assert_int_equal(info.nonzero_pages, 6); /* zero pages are not stored */
        assert_int_equal(info.nchunks, 2);
        assert_int_equal(info.hc, hc);
        assert_true(info.file_size < back->hdr->index_offset + 2 * SBX_PAGE_SIZE);
        assert_int_equal(info.format, 2);
        assert_int_equal(info.layout_abi, SBX_ABI_VERSION);
        assert_int_equal(info.nmsrs, 6);
        assert_int_equal(info.ncpuid, 3);
        assert_int_equal(info.xsave_size, 4096 + 576);
        /* every recorded part of the vCPU state comes back as it went in */
        struct sbx_vcpu_state want;
        snapfix_vcpu_state(&want);
        assert_memory_equal(&back->meta->vcpu, &want, sizeof want);
        assert_memory_equal(&snap->meta->vcpu, &want, sizeof want);
        SBX_OPTS(sbx_func_info, f);
        assert_int_equal(sbx_snapshot_function(back, 0, &f, NULL), 0);
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
static void m_format(struct sbx_snap_header *h) { h->prefix.format = 3; }
static void m_header_size(struct sbx_snap_header *h) { h->prefix.header_size = 64; }
static void m_page(struct sbx_snap_header *h) { h->page_size = 8192; }
static void m_mem(struct sbx_snap_header *h) { h->mem_size = 3ull << 20; }
static void m_mem_huge(struct sbx_snap_header *h) { h->mem_size = 1ull << 40; }
static void m_file_size(struct sbx_snap_header *h) { h->file_size += 1; }
static void m_nchunks(struct sbx_snap_header *h) { h->nchunks = 5; }
static void m_compression(struct sbx_snap_header *h) { h->compression = 9; }
static void m_note(struct sbx_snap_header *h) { h->guest_has_note = 2; }
static void m_reserved(struct sbx_snap_header *h) { h->reserved[7] = 1; }
static void m_writer_string(struct sbx_snap_header *h) { memset(h->writer.string, 'x', 32); }
static void m_sections_off(struct sbx_snap_header *h) { h->sections_offset = 8; }
static void m_sections_size(struct sbx_snap_header *h) { h->sections_size = 1ull << 40; }
static void m_sections_odd(struct sbx_snap_header *h) { h->sections_size -= 4; }
static void m_nsections(struct sbx_snap_header *h) { h->nsections = 1000; }
static void m_fewer_sections(struct sbx_snap_header *h) { h->nsections = 4; }
static void m_sections_hash(struct sbx_snap_header *h) { h->sections_xxh3 ^= 1; }
static void m_index_off(struct sbx_snap_header *h) { h->index_offset = 1ull << 62; }
static void m_data_off(struct sbx_snap_header *h) { h->data_offset = UINT64_MAX - 3; }
static void m_index_hash(struct sbx_snap_header *h) { h->index_xxh3 ^= 1; }
static void m_pages(struct sbx_snap_header *h) { h->nonzero_pages = 7; }

/* Each header field, changed with a valid header checksum: rejected with its message. */
static void test_header_fields_rejected(void **state)
{
    (void)state;
    const struct field_case cases[] = {
        { "magic", m_magic, SBX_E_SNAP_FORMAT, "bad magic" },
        { "format", m_format, SBX_E_SNAP_FORMAT, "snapshot format 3; this build reads format 2" },
        { "header_size", m_header_size, SBX_E_SNAP_CORRUPT, "header_size 64" },
        { "page size", m_page, SBX_E_SNAP_FORMAT, "page size 8192" },
        { "mem_size", m_mem, SBX_E_SNAP_CORRUPT, "memory size 3145728" },
        { "mem_size huge", m_mem_huge, SBX_E_SNAP_CORRUPT, "mem_size" },
        { "file_size", m_file_size, SBX_E_SNAP_CORRUPT, "truncated or extended" },
        { "nchunks", m_nchunks, SBX_E_SNAP_CORRUPT, "do not tile" },
        { "compression", m_compression, SBX_E_SNAP_CORRUPT, "compression 9" },
        { "guest_has_note", m_note, SBX_E_SNAP_CORRUPT, "guest_has_note 2" },
        { "reserved", m_reserved, SBX_E_SNAP_CORRUPT, "reserved" },
        { "writer string", m_writer_string, SBX_E_SNAP_CORRUPT, "writer version string" },
        { "sections offset", m_sections_off, SBX_E_SNAP_CORRUPT, "do not tile" },
        { "sections size", m_sections_size, SBX_E_SNAP_CORRUPT, "do not tile" },
        { "sections size odd", m_sections_odd, SBX_E_SNAP_CORRUPT, "do not tile" },
        { "nsections", m_nsections, SBX_E_SNAP_CORRUPT, "do not tile" },
        { "fewer sections", m_fewer_sections, SBX_E_SNAP_CORRUPT, "sections end at" },
        { "sections checksum", m_sections_hash, SBX_E_SNAP_CORRUPT, "sections checksum" },
        { "index offset", m_index_off, SBX_E_SNAP_CORRUPT, "do not tile" },
        { "data offset", m_data_off, SBX_E_SNAP_CORRUPT, "do not tile" },
        { "index checksum", m_index_hash, SBX_E_SNAP_CORRUPT, "index checksum" },
        { "nonzero pages", m_pages, SBX_E_SNAP_CORRUPT, "header says 7 pages" },
    };
    struct sbx_snapshot *snap = make_snapshot(false);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *buf = copy_of(snap);
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
    sbx_snapshot_free(snap);
}

struct section_case {
    const char *name;
    uint32_t type;
    void (*mutate)(uint8_t *payload, uint64_t len);
    int code;
    const char *msg;
};

static void s_name(uint8_t *p, uint64_t len) { (void)len; p[4 + 2 + 1] = '-'; } /* "a-d" */
static void s_name_nul(uint8_t *p, uint64_t len) { (void)len; p[4 + 2 + 1] = '\0'; }
static void s_arg_type(uint8_t *p, uint64_t len) { (void)len; p[4 + 2 + 3 + 2] = 99; }
static void s_nargs(uint8_t *p, uint64_t len) { (void)len; p[4 + 2 + 3 + 1] = 9; }
static void s_nfuncs(uint8_t *p, uint64_t len) { (void)len; p[0] = 0xe8, p[1] = 3; } /* 1000 */
static void s_fewer_funcs(uint8_t *p, uint64_t len) { (void)len; p[0] = 1; }
static void s_more_funcs(uint8_t *p, uint64_t len) { (void)len; p[0] = 3; }
static void s_dup_name(uint8_t *p, uint64_t len)
{
    assert_int_equal(len, 4 + 9 + 9); /* "add" and "hello": room for "add" twice */
    memcpy(p + 4 + 9, p + 4, 9);
}
static void s_name_len(uint8_t *p, uint64_t len) { (void)len; p[4] = 0xff, p[5] = 0xff; }
static void s_msr_order(uint8_t *p, uint64_t len) { (void)len; p[16] = 5, p[17] = 0; } /* 0x174 -> 0x5 */
static void s_msr_dup(uint8_t *p, uint64_t len) { (void)len; memcpy(p + 16, p, 4); }
static void s_msr_reserved(uint8_t *p, uint64_t len) { (void)len; p[4] = 1; }
static void s_cpuid_flags(uint8_t *p, uint64_t len) { (void)len; p[8] = 0x80; }
static void s_xcrs(uint8_t *p, uint64_t len) { (void)len; struct sbx_snap_vcpu *v = (void *)p; v->nxcrs = 17; }
static void s_vcpu_reserved(uint8_t *p, uint64_t len) { (void)len; struct sbx_snap_vcpu *v = (void *)p; v->reserved2[0] = 1; }
static void s_type_unknown(uint8_t *p, uint64_t len) { (void)len; ((struct sbx_snap_section *)(void *)(p - 24))->type = 99; }
static void s_type_optional(uint8_t *p, uint64_t len)
{
    (void)len;
    struct sbx_snap_section *sec = (void *)(p - 24);
    sec->type = 99, sec->flags = SBX_SNAP_SEC_OPTIONAL; /* skipped: then XSAVE is missing */
}
static void s_type_repeat(uint8_t *p, uint64_t len) { (void)len; ((struct sbx_snap_section *)(void *)(p - 24))->type = SBX_SNAP_SEC_MSRS; }
static void s_flags(uint8_t *p, uint64_t len) { (void)len; ((struct sbx_snap_section *)(void *)(p - 24))->flags = 2; }
static void s_length(uint8_t *p, uint64_t len) { (void)len; ((struct sbx_snap_section *)(void *)(p - 24))->length = 1ull << 40; }
static void s_padding(uint8_t *p, uint64_t len) { p[len] = 1; }
static void s_xsave_short(uint8_t *p, uint64_t len)
{
    /* a 4088-byte XSAVE area: the padding grows to 8 so the region still tiles */
    (void)len;
    ((struct sbx_snap_section *)(void *)(p - 24))->length -= 576 + 8;
}

/* Each section's content, changed with every checksum made right: rejected
 * with its message. Functions follow the one name rule (names.c). */
static void test_sections_rejected(void **state)
{
    (void)state;
    const struct section_case cases[] = {
        { "name char", SBX_SNAP_SEC_FUNCTIONS, s_name, SBX_E_SNAP_CORRUPT, "function 0 has an invalid name" },
        { "name NUL", SBX_SNAP_SEC_FUNCTIONS, s_name_nul, SBX_E_SNAP_CORRUPT, "function 0 has an invalid name" },
        { "arg type", SBX_SNAP_SEC_FUNCTIONS, s_arg_type, SBX_E_SNAP_CORRUPT, "function 0" },
        { "nargs", SBX_SNAP_SEC_FUNCTIONS, s_nargs, SBX_E_SNAP_CORRUPT, "function 0" },
        { "nfuncs", SBX_SNAP_SEC_FUNCTIONS, s_nfuncs, SBX_E_LIMIT, "1000 functions; this build holds at most 64" },
        { "fewer funcs", SBX_SNAP_SEC_FUNCTIONS, s_fewer_funcs, SBX_E_SNAP_CORRUPT, "after its 1 functions" },
        { "more funcs", SBX_SNAP_SEC_FUNCTIONS, s_more_funcs, SBX_E_SNAP_CORRUPT, "function 2 runs past" },
        { "repeated name", SBX_SNAP_SEC_FUNCTIONS, s_dup_name, SBX_E_SNAP_CORRUPT, "function 1 repeats the name 'add'" },
        { "name length", SBX_SNAP_SEC_FUNCTIONS, s_name_len, SBX_E_SNAP_CORRUPT, "function 0 runs past" },
        { "msr order", SBX_SNAP_SEC_MSRS, s_msr_order, SBX_E_SNAP_CORRUPT, "MSR 1 (index 0x5)" },
        { "msr repeated", SBX_SNAP_SEC_MSRS, s_msr_dup, SBX_E_SNAP_CORRUPT, "repeated" },
        { "msr reserved", SBX_SNAP_SEC_MSRS, s_msr_reserved, SBX_E_SNAP_CORRUPT, "MSR 0" },
        { "cpuid flags", SBX_SNAP_SEC_CPUID, s_cpuid_flags, SBX_E_SNAP_CORRUPT, "unknown flags 0x80" },
        { "xcrs", SBX_SNAP_SEC_VCPU, s_xcrs, SBX_E_SNAP_CORRUPT, "17 XCRs" },
        { "vcpu reserved", SBX_SNAP_SEC_VCPU, s_vcpu_reserved, SBX_E_SNAP_CORRUPT, "reserved" },
        { "unknown type", SBX_SNAP_SEC_XSAVE, s_type_unknown, SBX_E_SNAP_FORMAT, "type 99, which this build does not know" },
        { "optional type", SBX_SNAP_SEC_XSAVE, s_type_optional, SBX_E_SNAP_CORRUPT, "required section" },
        { "repeated type", SBX_SNAP_SEC_CPUID, s_type_repeat, SBX_E_SNAP_CORRUPT, "section type 2 repeated" },
        { "flags", SBX_SNAP_SEC_CPUID, s_flags, SBX_E_SNAP_CORRUPT, "flags 0x2" },
        { "length", SBX_SNAP_SEC_VCPU, s_length, SBX_E_SNAP_CORRUPT, "length 1099511627776" },
        { "padding", SBX_SNAP_SEC_FUNCTIONS, s_padding, SBX_E_SNAP_CORRUPT, "padding not zero" },
        { "xsave short", SBX_SNAP_SEC_XSAVE, s_xsave_short, SBX_E_SNAP_CORRUPT, "XSAVE section is 4088 bytes" },
    };
    struct sbx_snapshot *snap = make_snapshot(false);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *buf = copy_of(snap);
        uint64_t len;
        uint8_t *payload = section(buf, cases[i].type, &len);
        cases[i].mutate(payload, len);
        snapfix(buf, snap->size, FIX_SECTIONS | FIX_HEADER);
        struct sbx_diag d = { 0 };
        int rc = open_bytes(buf, snap->size, "section.snap", &d);
        if (rc != cases[i].code)
            fail_msg("%s: expected %d, got %d: %s", cases[i].name, cases[i].code, rc, d.msg);
        tu_assert_contains(d.msg, cases[i].msg);
        tu_assert_contains(d.msg, "section.snap");
        free(buf);
    }
    sbx_snapshot_free(snap);
}

/* An unknown section flagged optional is skipped; the rest decodes as before. */
static void test_optional_section_skipped(void **state)
{
    (void)state;
    struct sbx_snapshot *snap = make_snapshot(false);
    const struct sbx_snap_header *h = snap->hdr;
    uint64_t size = h->sections_size + sbx_snap_section_size(5);
    uint8_t *buf = calloc(1, size);
    memcpy(buf, snap->image + h->sections_offset, h->sections_size);
    struct sbx_snap_section extra = { .type = 77, .flags = SBX_SNAP_SEC_OPTIONAL, .length = 5 };
    memcpy(buf + h->sections_size, &extra, sizeof extra);
    memcpy(buf + h->sections_size + sizeof extra, "later", 5);
    sbx_snap_seal_sections(buf, size);
    struct sbx_snap_header h2 = *h;
    h2.nsections++, h2.sections_size = size, h2.sections_xxh3 = XXH3_64bits(buf, size);
    static struct sbx_snap_meta m;
    struct sbx_diag d = { 0 };
    assert_int_equal(sbx_snap_read_sections(buf, &h2, &m, "opt", &d), 0);
    assert_int_equal(m.nfuncs, 2);
    assert_memory_equal(&m.vcpu, &snap->meta->vcpu, sizeof m.vcpu);
    free(buf);
    sbx_snapshot_free(snap);
}

/* A snapshot of the state sbx_vcpu_save fills today (no MSRs, no CPUID, the
 * legacy XSAVE area, no functions) encodes and decodes too. */
static void test_empty_lists(void **state)
{
    (void)state;
    uint8_t *mem = calloc(1, MEM);
    static struct sbx_vcpu_state st;
    memset(&st, 0, sizeof st);
    st.xsave_size = 4096;
    struct sbx_cpu_facts cpu = { .vendor = "GenuineIntel" };
    struct sbx_snap_input in = { .mem = mem, .mem_size = MEM, .state = &st, .cpu = &cpu };
    struct sbx_snapshot *snap = calloc(1, sizeof *snap), *back = NULL;
    snap->path = strdup("(memory)");
    struct sbx_diag d = { 0 };
    assert_int_equal(sbx_snap_encode(&in, snap, &d), 0);
    assert_int_equal(sbx_snapshot_from_memory(snap->image, snap->size, "empty", NULL, &back, &d), 0);
    assert_memory_equal(&back->meta->vcpu, &st, sizeof st);
    assert_int_equal(back->meta->nfuncs, 0);
    assert_int_equal(back->hdr->nchunks, 0);
    /* the encoder refuses a state no reader would accept */
    st.xsave_size = 100;
    struct sbx_snapshot bad = { .path = (char *)"bad" };
    assert_int_equal(sbx_snap_encode(&in, &bad, &d), SBX_E_INVAL);
    tu_assert_contains(d.msg, "100 XSAVE bytes");
    sbx_snapshot_free(back);
    sbx_snapshot_free(snap);
    free(mem);
}

/* A format-1 file is refused from its prefix, with the fix. */
static void test_format1_rejected(void **state)
{
    (void)state;
    uint8_t old[10840] = { 0 };
    struct sbx_snap_prefix p = { .magic = SBX_SNAP_MAGIC, .format = 1, .header_size = sizeof old };
    memcpy(old, &p, sizeof p);
    struct sbx_diag d = { 0 };
    assert_int_equal(open_bytes(old, sizeof old, "v1.snap", &d), SBX_E_SNAP_FORMAT);
    tu_assert_contains(d.msg, "v1.snap: snapshot format 1; this build reads format 2: recreate "
                              "the snapshot");
    struct sbx_snapshot *snap = NULL;
    assert_int_equal(sbx_snapshot_open_header(tu_path("v1.snap"), NULL, &snap, &d),
                     SBX_E_SNAP_FORMAT);
}

/* The body is not read for a header-only open (info), and a restore refuses it. */
static void test_rejected_from_header_alone(void **state)
{
    (void)state;
    struct sbx_snapshot *snap = make_snapshot(false);
    const char *path = tu_path("garbage-body.snap");
    uint8_t *buf = copy_of(snap);
    size_t body = snap->hdr->index_offset;
    memset(buf + body, 0xee, snap->size - body);
    tu_write(path, buf, snap->size);
    struct sbx_snapshot *hdr_only = NULL;
    struct sbx_diag d = { 0 };
    assert_int_equal(sbx_snapshot_open_header(path, NULL, &hdr_only, &d), 0);
    assert_int_equal(hdr_only->size, body);
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
        uint8_t *buf = copy_of(snap);
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
    o = (struct sbx_snapshot_open_opts){ .sz = sizeof o, .max_chunks = 1 };
    assert_int_equal(sbx_snapshot_open_header(path, &o, &snap, &d), SBX_E_LIMIT);
    tu_assert_contains(d.msg, "chunks, over the limit of 1 (max_chunks)");
    o.max_chunks = 2; /* the made-up machine has exactly two runs of pages */
    assert_int_equal(sbx_snapshot_open(path, &o, &snap, &d), 0);
    sbx_snapshot_free(snap);
    o = (struct sbx_snapshot_open_opts){ .sz = sizeof o, .max_mem_size = 2 << 20 };
    assert_int_equal(sbx_snapshot_open_header(path, &o, &snap, &d), SBX_E_LIMIT);
    tu_assert_contains(d.msg, "4194304 bytes of guest memory, over the limit of 2097152 (max_mem_size)");
    o = (struct sbx_snapshot_open_opts){ .sz = sizeof o, .max_nonzero_pages = 5 };
    assert_int_equal(sbx_snapshot_open_header(path, &o, &snap, &d), SBX_E_LIMIT);
    tu_assert_contains(d.msg, "6 stored pages, over the limit of 5 (max_nonzero_pages)");
    o = (struct sbx_snapshot_open_opts){ .sz = sizeof o, .max_mem_size = MEM, .max_nonzero_pages = 6 };
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

/* ---- golden files (tests/golden, made by `test_snapshot --make-golden`) ---- */

static const char *golden_dir(void)
{
    return getenv("SBX_GOLDEN") ? getenv("SBX_GOLDEN") : "tests/golden";
}

static const char *golden(const char *name)
{
    static char path[2][1024];
    static int which;
    which ^= 1;
    snprintf(path[which], sizeof path[which], "%s/%s", golden_dir(), name);
    return path[which];
}

static const struct sbx_func golden_funcs[] = {
    { .name = "add", .ret_type = SBX_T_I32, .nargs = 2, .arg_types = { SBX_T_I32, SBX_T_I32 } },
    { .name = "echo", .ret_type = SBX_T_STR, .nargs = 1, .arg_types = { SBX_T_STR } },
    { .name = "counter", .ret_type = SBX_T_U64, .nargs = 0 },
    { .name = "log", .ret_type = SBX_T_VOID, .nargs = 2, .arg_types = { SBX_T_I32, SBX_T_STR } },
};

/* The golden snapshot: demo.elf's memory image as a sandbox lays it out,
 * with the synthetic vCPU state and part of demo's function table. Encoded
 * natively, so it needs no KVM; it is a format fixture, not a runnable guest. */
static int make_golden(const char *build, const char *out)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/guests/demo.elf", build);
    struct sbx_guest *g = NULL;
    struct sbx_diag d = { 0 };
    if (sbx_guest_open(path, &g, &d))
        return fprintf(stderr, "make-golden: %s\n", d.msg), 1;
    snprintf(path, sizeof path, "%s/demo.elf", out);
    tu_write(path, g->file, g->file_size);
    struct sbx_vm vm = { .mem = calloc(1, SBX_MEM_MIN), .mem_size = SBX_MEM_MIN };
    if (sbx_mem_prepare(&vm, g, 0, 0, &d))
        return fprintf(stderr, "make-golden: %s\n", d.msg), 1;
    static struct sbx_vcpu_state st;
    snapfix_vcpu_state(&st);
    struct sbx_cpu_facts cpu = { .vendor = "AuthenticAMD" };
    struct sbx_snap_input in = { .mem = vm.mem, .mem_size = vm.mem_size, .state = &st, .cpu = &cpu,
                                 .funcs = golden_funcs, .nfuncs = 4, .hc = true,
                                 .guest_hash = sbx_guest_hash(g) };
    in.guest_has_note = sbx_guest_note(g, &in.guest_version) != SBX_NOTE_NONE;
    struct sbx_snapshot *snap = calloc(1, sizeof *snap);
    snap->path = strdup("golden");
    snprintf(path, sizeof path, "%s/demo.snap", out);
    int rc = sbx_snap_encode(&in, snap, &d) || sbx_snapshot_write(snap, path, &d);
    if (rc)
        fprintf(stderr, "make-golden: %s\n", d.msg);
    sbx_snapshot_free(snap);
    free(vm.mem);
    sbx_guest_free(g);
    return rc;
}

/* The golden guest and snapshot of this release load: header, full open,
 * verify, and the guest they were made from. */
static void test_golden_files_load(void **state)
{
    (void)state;
    struct sbx_snapshot *snap = NULL;
    struct sbx_diag d = { 0 };
    assert_int_equal(sbx_snapshot_open_header(golden("demo.snap"), NULL, &snap, &d), 0);
    sbx_snapshot_free(snap);
    if (sbx_snapshot_open(golden("demo.snap"), NULL, &snap, &d))
        fail_msg("%s", d.msg);
    assert_int_equal(sbx_snapshot_verify(snap, &d), 0);
    SBX_OPTS(sbx_snapshot_info, info);
    assert_int_equal(sbx_snapshot_info(snap, &info, NULL), 0);
    assert_int_equal(info.format, SBX_SNAP_FORMAT);
    assert_int_equal(info.nfuncs, 4);
    assert_true(info.guest_has_note && info.hc);
    assert_int_equal(info.nmsrs, 6);
    assert_int_equal(info.xsave_size, 4096 + 576);
    SBX_OPTS(sbx_func_info, f);
    assert_int_equal(sbx_snapshot_function(snap, 3, &f, NULL), 0);
    assert_string_equal(f.name, "log");
    assert_int_equal(f.args[1], SBX_T_STR);
    struct sbx_guest *g = NULL;
    assert_int_equal(sbx_guest_open(golden("demo.elf"), &g, &d), 0);
    assert_int_equal(sbx_guest_hash(g), info.guest_elf_hash);
    struct sbx_version note;
    assert_int_equal(sbx_guest_note(g, &note), SBX_NOTE_FROM_PHDR);
    assert_string_equal(note.string, info.guest.string);
    sbx_guest_free(g);
    sbx_snapshot_free(snap);
}

enum { OK = 0, VER = SBX_E_VERSION, FMT = SBX_E_SNAP_FORMAT, NONOTE = SBX_E_NO_NOTE };

struct verdict_case {
    const char *name;
    int32_t major, minor, patch, abi; /* added to this host's version for the guest */
    int32_t layout, writer;           /* added to the layout ABI and the writer's major */
    bool no_note;
    int exact, relaxed, abi_only;     /* the documented verdicts (docs/snapshot-format.md) */
};

static const struct verdict_case verdicts[] = {
    { "same",          0, 0, 0, 0, 0, 0, false, OK, OK, OK },
    { "writer +1.0.0", 0, 0, 0, 0, 0, 1, false, OK, OK, OK },
    { "guest patch+1", 0, 0, 1, 0, 0, 0, false, VER, OK, OK },
    { "guest patch-1", 0, 0, -1, 0, 0, 0, false, VER, VER, OK },
    { "guest minor+1", 0, 1, 0, 0, 0, 0, false, VER, VER, OK },
    { "guest major+1", 1, 0, 0, 0, 0, 0, false, VER, VER, OK },
    { "guest abi+1",   0, 0, 0, 1, 0, 0, false, VER, VER, VER },
    { "layout abi+1",  0, 0, 0, 0, 1, 0, false, FMT, FMT, FMT },
    { "no note",       0, 0, 0, 0, 0, 0, true, OK, OK, OK },
};

/* The golden snapshot's header rewritten as case c says, checksum fixed up. */
static uint8_t *golden_variant(const struct verdict_case *c, size_t *len)
{
    uint8_t *buf = tu_read(golden("demo.snap"), len);
    struct sbx_snap_header *h = (struct sbx_snap_header *)buf;
    struct sbx_version host;
    sbx_host_version(&host);
    /* patch 0 - 1 wraps to a huge patch: still "not the same", as the table says */
    h->guest = (struct sbx_snap_version){ .major = host.major + (uint32_t)c->major,
                                          .minor = host.minor + (uint32_t)c->minor,
                                          .patch = host.patch + (uint32_t)c->patch,
                                          .abi = host.abi + (uint32_t)c->abi };
    if (c->patch < 0 && host.patch == 0)
        h->guest.patch = 0, h->guest.minor = host.minor - 1; /* an older guest all the same */
    snprintf(h->guest.string, sizeof h->guest.string, "%u.%u.%u", h->guest.major,
             h->guest.minor, h->guest.patch);
    h->guest_has_note = !c->no_note;
    h->layout_abi += (uint32_t)c->layout;
    h->writer.major += (uint32_t)c->writer;
    snprintf(h->writer.string, sizeof h->writer.string, "%u.%u.%u", h->writer.major,
             h->writer.minor, h->writer.patch);
    h->header_xxh3 = sbx_snap_header_hash(h);
    return buf;
}

static void expect_verdict(const struct verdict_case *c, const char *path,
                           enum sbx_version_policy policy, int want)
{
    static const char *names[] = { "exact", "relaxed", "abi" };
    SBX_OPTS(sbx_snapshot_open_opts, o, .policy = policy);
    struct sbx_snapshot *snap = NULL;
    struct sbx_diag d = { 0 };
    /* info and verify describe it whatever the versions */
    if (sbx_snapshot_open(path, &o, &snap, &d) || sbx_snapshot_verify(snap, &d))
        fail_msg("%s: open: %s", c->name, d.msg);
    int rc = sbx_snapshot_check_compat(snap, policy, false, &d);
    if (rc != want)
        fail_msg("%s under %s: expected %d, got %d (%s)", c->name, names[policy], want, rc, d.msg);
    if (rc) {
        tu_assert_contains(d.msg, path);
        tu_assert_contains(d.msg, "recreate the snapshot");
    }
    if (rc == VER) {
        struct sbx_version host;
        sbx_host_version(&host);
        tu_assert_contains(d.msg, snap->hdr->guest.string);
        tu_assert_contains(d.msg, host.string);
        tu_assert_contains(d.msg, names[policy]);
    }
    /* a restore applies the policy it was opened with: the same verdict */
    struct sbx_template *t = NULL;
    assert_int_equal(sbx_template_from_snapshot(snap, &t, &d), want);
    sbx_template_free(t);
    sbx_snapshot_free(snap);
}

/* Files whose recorded versions differ get exactly the documented verdict
 * under each policy, from the header alone. */
static void test_golden_version_verdicts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof verdicts / sizeof verdicts[0]; i++) {
        const struct verdict_case *c = &verdicts[i];
        size_t len;
        uint8_t *buf = golden_variant(c, &len);
        const char *path = tu_path("variant.snap");
        tu_write(path, buf, len);
        free(buf);
        expect_verdict(c, path, SBX_VERSION_EXACT, c->exact);
        expect_verdict(c, path, SBX_VERSION_RELAXED, c->relaxed);
        expect_verdict(c, path, SBX_VERSION_ABI, c->abi_only);
        SBX_OPTS(sbx_snapshot_open_opts, o, .policy = SBX_VERSION_ABI, .require_note = true);
        struct sbx_snapshot *snap = NULL;
        struct sbx_diag d = { 0 };
        assert_int_equal(sbx_snapshot_open(path, &o, &snap, &d), 0);
        int want = c->no_note ? NONOTE : c->abi_only;
        assert_int_equal(sbx_snapshot_check_compat(snap, SBX_VERSION_ABI, true, &d), want);
        struct sbx_template *t = NULL;
        assert_int_equal(sbx_template_from_snapshot(snap, &t, &d), want);
        sbx_template_free(t);
        sbx_snapshot_free(snap);
    }
}

/* The same policy for guest ELF files names the other fix. */
static void test_elf_verdict_says_rebuild(void **state)
{
    (void)state;
    struct sbx_version host, guest;
    sbx_host_version(&host);
    guest = host;
    guest.minor++;
    struct sbx_diag d = { 0 };
    assert_int_equal(sbx_version_check(&host, &guest, SBX_VERSION_RELAXED, "g.elf", &d), VER);
    tu_assert_contains(d.msg, "g.elf: version mismatch");
    tu_assert_contains(d.msg, "rebuild the guest");
    assert_int_equal(sbx_version_check(&host, &guest, SBX_VERSION_ABI, "g.elf", &d), 0);
    guest.abi++;
    assert_int_equal(sbx_version_check(&host, &guest, SBX_VERSION_ABI, "g.elf", &d), VER);
    tu_assert_contains(d.msg, "policy 'abi' requires the same abi");
    assert_int_equal(sbx_version_check(&host, &host, (enum sbx_version_policy)7, "g.elf", &d),
                     SBX_E_INVAL);
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

    /* a file from another release is described and verified, not refused */
    const struct verdict_case other = { "guest minor+1, writer +1", 0, 1, 0, 0, 0, 1, false,
                                        VER, VER, OK };
    buf = golden_variant(&other, &size);
    path = tu_path("other-release.snap");
    tu_write(path, buf, size);
    free(buf);
    snprintf(cmd, sizeof cmd, "%s info '%s' >/dev/null && %s verify '%s' >/dev/null", cli_path,
             path, cli_path, path);
    assert_int_equal(system(cmd), 0);
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--make-golden"))
        return make_golden(argv[2], argv[3]); /* BUILD_DIR OUT_DIR */
    const char *build = tu_build_dir(argc, argv);
    snprintf(cli_path, sizeof cli_path, "%s/snapbox", build);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_through_file),
        cmocka_unit_test(test_open_limits),
        cmocka_unit_test(test_template_is_sealed_copy),
        cmocka_unit_test(test_header_fields_rejected),
        cmocka_unit_test(test_rejected_from_header_alone),
        cmocka_unit_test(test_sections_rejected),
        cmocka_unit_test(test_optional_section_skipped),
        cmocka_unit_test(test_empty_lists),
        cmocka_unit_test(test_format1_rejected),
        cmocka_unit_test(test_golden_files_load),
        cmocka_unit_test(test_golden_version_verdicts),
        cmocka_unit_test(test_elf_verdict_says_rebuild),
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
