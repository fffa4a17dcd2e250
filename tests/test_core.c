/* test_core.c - core files without KVM: the ELF that sbx_core_write and
 * sbx_snapshot_write_core produce, read back with libelf (header, notes,
 * segments, their bytes), their size bound, and the gdb stub's address rule.
 * gdb itself reads them in tests/test_debug.sh. */
#include <gelf.h>
#include <fcntl.h>
#include <sys/procfs.h>
#include <sys/stat.h>

#include "testutil.h"
#include "debug/debug.h"

#define MEM (4u << 20)
#define PAGE 4096u

static uint8_t *mem;

static int setup(void **state)
{
    (void)state;
    mem = calloc(1, MEM);
    return mem ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    free(mem);
    return 0;
}

static struct sbx_core_input input(uint64_t max)
{
    struct sbx_core_input in = { .mem = mem, .mem_size = MEM, .signo = 11, .name = "t.elf",
                                 .max_bytes = max };
    in.regs.rip = 0x100123;
    in.regs.rsp = 0xff000;
    in.regs.rbx = 0x1122334455667788ull;
    in.sregs.cs.selector = 8;
    return in;
}

struct core {
    int fd;
    Elf *e;
    GElf_Ehdr eh;
    size_t nph;
};

static void core_open(struct core *c, const char *path)
{
    assert_int_not_equal(elf_version(EV_CURRENT), EV_NONE);
    c->fd = open(path, O_RDONLY);
    assert_true(c->fd >= 0);
    c->e = elf_begin(c->fd, ELF_C_READ, NULL);
    assert_non_null(c->e);
    assert_non_null(gelf_getehdr(c->e, &c->eh));
    assert_int_equal(elf_getphdrnum(c->e, &c->nph), 0);
}

static void core_close(struct core *c)
{
    elf_end(c->e);
    close(c->fd);
}

/* The registers in NT_PRSTATUS, where gdb looks for them. */
static void check_prstatus(struct core *c, const struct sbx_core_input *in)
{
    GElf_Phdr ph;
    assert_non_null(gelf_getphdr(c->e, 0, &ph));
    assert_int_equal(ph.p_type, PT_NOTE);
    size_t len;
    const char *file = elf_rawfile(c->e, &len);
    Elf_Data d = { .d_buf = (void *)(file + ph.p_offset), .d_size = ph.p_filesz,
                   .d_type = ELF_T_NHDR, .d_version = EV_CURRENT };
    GElf_Nhdr nh;
    size_t off = 0, name, desc;
    bool found = false;
    while ((off = gelf_getnote(&d, off, &nh, &name, &desc)) > 0) {
        if (nh.n_type != NT_PRSTATUS)
            continue;
        assert_int_equal(nh.n_descsz, sizeof(struct elf_prstatus));
        struct elf_prstatus ps;
        memcpy(&ps, (const char *)d.d_buf + desc, sizeof ps);
        struct user_regs_struct u;
        memcpy(&u, &ps.pr_reg, sizeof u);
        assert_int_equal(u.rip, in->regs.rip);
        assert_int_equal(u.rsp, in->regs.rsp);
        assert_int_equal(u.rbx, in->regs.rbx);
        assert_int_equal(u.cs, 8);
        assert_int_equal(ps.pr_cursig, 11);
        found = true;
    }
    assert_true(found);
}

/* ET_CORE for x86-64; a segment per run of non-zero pages, at its address,
 * page-aligned in the file, holding the guest's bytes. */
static void test_core_layout(void **state)
{
    (void)state;
    memset(mem + 0x1000, 0x11, PAGE);      /* one page */
    memset(mem + 0x100000, 0x22, 3 * PAGE); /* a run of three */
    mem[0x3ff000] = 0x33;                   /* the last page */
    struct sbx_core_input in = input(UINT64_MAX);
    struct sbx_diag d = { 0 };
    bool cut = true;
    const char *path = tu_path("layout.core");
    assert_int_equal(sbx_core_write(&in, path, &cut, &d), 0);
    assert_false(cut);
    struct core c;
    core_open(&c, path);
    assert_int_equal(c.eh.e_type, ET_CORE);
    assert_int_equal(c.eh.e_machine, EM_X86_64);
    assert_int_equal(c.eh.e_ident[EI_CLASS], ELFCLASS64);
    assert_int_equal(c.nph, 4);
    check_prstatus(&c, &in);
    static const uint64_t want[][2] = { { 0x1000, PAGE }, { 0x100000, 3 * PAGE }, { 0x3ff000, PAGE } };
    size_t len;
    const uint8_t *file = (const uint8_t *)elf_rawfile(c.e, &len);
    for (size_t i = 0; i < 3; i++) {
        GElf_Phdr ph;
        assert_non_null(gelf_getphdr(c.e, (int)i + 1, &ph));
        assert_int_equal(ph.p_type, PT_LOAD);
        assert_int_equal(ph.p_vaddr, want[i][0]);
        assert_int_equal(ph.p_filesz, want[i][1]);
        assert_int_equal(ph.p_offset % PAGE, 0);
        assert_true(ph.p_offset + ph.p_filesz <= len);
        assert_memory_equal(file + ph.p_offset, mem + ph.p_vaddr, ph.p_filesz);
    }
    core_close(&c);
    memset(mem, 0, MEM);
}

/* Over max_bytes, memory at the end is cut, the file stays within it, and
 * a limit below the headers is refused with nothing left behind. */
static void test_core_bounds(void **state)
{
    (void)state;
    memset(mem, 0x5a, MEM);
    struct sbx_core_input in = input(64 * 1024);
    struct sbx_diag d = { 0 };
    bool cut = false;
    const char *path = tu_path("bounded.core");
    assert_int_equal(sbx_core_write(&in, path, &cut, &d), 0);
    assert_true(cut);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size <= 64 * 1024);
    assert_true(st.st_size > 32 * 1024);
    in.max_bytes = 1000;
    const char *tiny = tu_path("tiny.core");
    assert_int_equal(sbx_core_write(&in, tiny, &cut, &d), SBX_E_LIMIT);
    assert_non_null(strstr(d.msg, "core_dump_max_bytes"));
    assert_int_equal(stat(tiny, &st), -1);
    memset(mem, 0, MEM);
}

/* A snapshot file as a core: its registers and stored memory. */
static void test_snapshot_core(void **state)
{
    (void)state;
    struct sbx_snapshot *snap = NULL;
    struct sbx_diag d = { 0 };
    const char *golden = getenv("SBX_GOLDEN") ? getenv("SBX_GOLDEN") : "tests/golden";
    char path[512];
    snprintf(path, sizeof path, "%s/demo.snap", golden);
    assert_int_equal(sbx_snapshot_open(path, NULL, &snap, &d), 0);
    const char *out = tu_path("snap.core");
    bool cut = true;
    assert_int_equal(sbx_snapshot_write_core(snap, out, 0, &cut, &d), 0);
    assert_false(cut);
    struct core c;
    core_open(&c, out);
    assert_int_equal(c.eh.e_type, ET_CORE);
    assert_true(c.nph >= 2);
    core_close(&c);
    assert_int_equal(sbx_snapshot_write_core(snap, out, 100, NULL, &d), SBX_E_LIMIT);
    assert_int_equal(sbx_snapshot_write_core(NULL, out, 0, NULL, &d), SBX_E_INVAL);
    sbx_snapshot_free(snap);
}

/* The gdb stub listens on loopback addresses only. */
static void test_gdb_addresses(void **state)
{
    (void)state;
    struct sbx_diag d = { 0 };
    assert_int_equal(sbx_gdb_check_addr("127.0.0.1:1234", &d), 0);
    assert_int_equal(sbx_gdb_check_addr("127.1.2.3:65535", &d), 0);
    assert_int_equal(sbx_gdb_check_addr("[::1]:1", &d), 0);
    static const char *bad[] = { "0.0.0.0:1234", "10.0.0.1:1234", "[::]:1234", "localhost:1",
                                 "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
                                 "127.0.0.1:12x", ":1234", "" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        d = (struct sbx_diag){ 0 };
        assert_int_equal(sbx_gdb_check_addr(bad[i], &d), SBX_E_INVAL);
        assert_non_null(strstr(d.msg, bad[i]));
    }
    /* refused before any KVM work, so this runs anywhere */
    struct sbx_guest *g = NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/demo.elf",
             getenv("SBX_GOLDEN") ? getenv("SBX_GOLDEN") : "tests/golden");
    assert_int_equal(sbx_guest_open(path, &g, &d), 0);
    SBX_OPTS(sbx_config, cfg, .gdb_addr = "192.0.2.1:1234");
    struct sbx_sandbox *s = NULL;
    assert_int_equal(sbx_sandbox_create(g, &cfg, &s, &d), SBX_E_INVAL);
    assert_non_null(strstr(d.msg, "loopback"));
    assert_null(s);
    sbx_guest_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_core_layout),
        cmocka_unit_test(test_core_bounds),
        cmocka_unit_test(test_snapshot_core),
        cmocka_unit_test(test_gdb_addresses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
