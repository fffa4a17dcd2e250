/* seed.c - seed corpora for the fuzz targets, from the real guests and from
 * snapshots of them encoded by the library (their memory laid out as a
 * sandbox's would be, no KVM needed). usage: seed GUEST_DIR OUT_DIR */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "snapfix.h"

static const char *out_dir;

static void put(const char *target, const char *name, const void *buf, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", out_dir, target);
    if (mkdir(path, 0755) < 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void seed_notes(void)
{
    struct sbx_version host;
    sbx_host_version(&host);
    struct {
        uint8_t align;
        uint32_t namesz, descsz, type;
        char owner[SBX_NOTE_OWNER_SIZE];
        struct sbx_note_version_desc desc;
    } __attribute__((packed)) note = {
        .namesz = SBX_NOTE_OWNER_SIZE, .descsz = SBX_NOTE_DESC_SIZE, .type = SBX_NOTE_TYPE_VERSION,
        .owner = SBX_NOTE_OWNER,
        .desc = { .major = host.major, .minor = host.minor, .patch = host.patch, .abi = host.abi },
    };
    snprintf(note.desc.version, sizeof note.desc.version, "%s", host.string);
    put("fuzz_note", "version-align4", &note, sizeof note);
    note.align = 1;
    put("fuzz_note", "version-align8", &note, sizeof note);
}

static void seed_guest(const char *guest_dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", guest_dir, name);
    struct sbx_guest *g = NULL;
    struct sbx_diag d = { 0 };
    if (sbx_guest_open(path, &g, &d)) {
        fprintf(stderr, "seed: %s\n", d.msg);
        exit(1);
    }
    put("fuzz_elf", name, g->file, g->file_size);
    if (!strcmp(name, "plain.elf")) { /* no note, nothing to snapshot that differs */
        sbx_guest_free(g);
        return;
    }
    struct sbx_vm vm = { .mem = calloc(1, SBX_MEM_MIN), .mem_size = SBX_MEM_MIN };
    if (!vm.mem)
        exit(1);
    if (sbx_mem_prepare(&vm, g, 0, 0, NULL))
        exit(1);
    memset(vm.mem + SBX_LAYOUT_HEAP, 0x5a, SBX_PAGE_SIZE); /* compressible */
    for (size_t i = 0; i < SBX_PAGE_SIZE; i++)            /* stored raw */
        vm.mem[SBX_LAYOUT_HEAP + 2 * SBX_PAGE_SIZE + i] = (uint8_t)(i * 2654435761u >> 13);
    static struct sbx_vcpu_state st;
    snapfix_vcpu_state(&st);
    if (!strcmp(name, "hostile.elf")) /* what sbx_vcpu_save fills today: no lists, legacy XSAVE */
        st.nmsrs = st.ncpuid = 0, st.xsave_size = 4096;
    static const struct sbx_cpu_facts cpu = { .vendor = "AuthenticAMD" };
    static const struct sbx_func funcs[] = {
        { .name = "add", .ret_type = SBX_T_I32, .nargs = 2, .arg_types = { SBX_T_I32, SBX_T_I32 } },
        { .name = "echo", .ret_type = SBX_T_STR, .nargs = 1, .arg_types = { SBX_T_STR } },
    };
    for (int hc = 0; hc < 2; hc++) {
        struct sbx_snap_input in = { .mem = vm.mem, .mem_size = vm.mem_size, .state = &st,
                                     .cpu = &cpu, .funcs = funcs, .nfuncs = 2, .hc = hc,
                                     .guest_has_note = true, .guest_hash = sbx_guest_hash(g) };
        sbx_host_version(&in.guest_version);
        struct sbx_snapshot snap = { .path = (char *)"seed" };
        if (sbx_snap_encode(&in, &snap, &d)) {
            fprintf(stderr, "seed: %s\n", d.msg);
            exit(1);
        }
        char out[256];
        snprintf(out, sizeof out, "%s-%s.snap", name, hc ? "lz4hc" : "lz4");
        put("fuzz_snap_header", out, snap.image, snap.size);
        put("fuzz_snap_chunks", out, snap.image, snap.size);
        free(snap.image);
        free(snap.meta);
    }
    free(vm.mem);
    sbx_guest_free(g);
}

/* The exchange area as a guest would leave it for each hypercall. */
struct hc_seed {
    uint8_t op, until;
    struct sbx_xchg x;
    uint8_t data[512];
} __attribute__((packed));

static uint64_t data_gpa(size_t off) { return SBX_XCHG_DATA_GPA + off; }

static void seed_hypercalls(void)
{
    struct hc_seed s = { .op = SBX_HC_LOG, .until = SBX_HC_RETURN };
    memcpy(s.data, "hello from the guest", 20);
    s.x.hc_a[0] = SBX_ABI_LOG_INFO, s.x.hc_a[1] = data_gpa(0), s.x.hc_a[2] = 20;
    put("fuzz_hypercall", "log", &s, sizeof s);
    s.op = SBX_HC_ABORT, s.x.hc_a[0] = 3;
    put("fuzz_hypercall", "abort", &s, sizeof s);
    memset(&s, 0, sizeof s);
    s.op = SBX_HC_HOST_CALL, s.until = SBX_HC_RETURN;
    memcpy(s.data, "host_echo", 9);
    memcpy(s.data + 16, "payload", 7);
    s.x.hc_a[0] = data_gpa(0), s.x.hc_a[1] = 9, s.x.nargs = 1;
    s.x.args[0] = (struct sbx_abi_value){ .type = SBX_ABI_T_STR, .u.buf = { data_gpa(16), 7 } };
    put("fuzz_hypercall", "host-echo", &s, sizeof s);
    memcpy(s.data, "host_add\0", 9);
    s.x.hc_a[1] = 8, s.x.nargs = 2;
    s.x.args[0] = (struct sbx_abi_value){ .type = SBX_ABI_T_I64, .u.i64 = 40 };
    s.x.args[1] = (struct sbx_abi_value){ .type = SBX_ABI_T_I64, .u.i64 = 2 };
    put("fuzz_hypercall", "host-add", &s, sizeof s);
    memset(&s, 0, sizeof s);
    s.op = s.until = SBX_HC_READY;
    struct sbx_abi_func table[2] = {
        { .name_gpa = data_gpa(128), .name_len = 3, .ret_type = SBX_ABI_T_I32, .nargs = 2,
          .arg_types = { SBX_ABI_T_I32, SBX_ABI_T_I32 } },
        { .name_gpa = data_gpa(136), .name_len = 4, .ret_type = SBX_ABI_T_STR, .nargs = 1,
          .arg_types = { SBX_ABI_T_STR } },
    };
    memcpy(s.data, table, sizeof table);
    memcpy(s.data + 128, "add", 3);
    memcpy(s.data + 136, "echo", 4);
    s.x.hc_a[0] = data_gpa(0), s.x.hc_a[1] = 2;
    for (uint8_t t = SBX_ABI_T_I32; t < SBX_ABI_T_COUNT_; t++)
        s.x.args[t % SBX_ABI_MAX_ARGS] = (struct sbx_abi_value){ .type = t,
                                                                 .u.buf = { data_gpa(128), 3 } };
    put("fuzz_hypercall", "ready-and-values", &s, sizeof s);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: seed GUEST_DIR OUT_DIR\n");
        return 2;
    }
    out_dir = argv[2];
    if (mkdir(out_dir, 0755) < 0 && errno != EEXIST) {
        perror(out_dir);
        return 1;
    }
    seed_notes();
    seed_guest(argv[1], "demo.elf");
    seed_guest(argv[1], "hostile.elf");
    seed_guest(argv[1], "plain.elf");
    seed_hypercalls();
    return 0;
}
