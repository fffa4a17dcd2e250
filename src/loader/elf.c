/* elf.c - read a guest ELF file with libelf and validate everything we use. */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "internal.h"
#include "sbx_abi.h"

/* Is [off, off + len) inside a file of size bytes, without wrap-around? */
static bool in_file(uint64_t off, uint64_t len, size_t size)
{
    return off <= size && len <= size - off;
}

static int check_ident(const struct sbx_guest *g, struct sbx_diag *diag)
{
    const uint8_t *id = g->file;
    if (g->file_size == 0)
        return sbx_fail(diag, SBX_E_ELF, "%s: empty file, not an ELF guest", g->path);
    if (g->file_size < EI_NIDENT || memcmp(id, ELFMAG, SELFMAG) != 0)
        return sbx_fail(diag, SBX_E_ELF, "%s: not an ELF file (bad magic)", g->path);
    if (id[EI_CLASS] != ELFCLASS64)
        return sbx_fail(diag, SBX_E_ELF, "%s: EI_CLASS is %u (%s); guests must be ELF64", g->path,
                        id[EI_CLASS], id[EI_CLASS] == ELFCLASS32 ? "32-bit" : "invalid");
    if (id[EI_DATA] != ELFDATA2LSB)
        return sbx_fail(diag, SBX_E_ELF, "%s: EI_DATA is %u; guests must be little-endian",
                        g->path, id[EI_DATA]);
    if (id[EI_VERSION] != EV_CURRENT)
        return sbx_fail(diag, SBX_E_ELF, "%s: EI_VERSION is %u, expected %u", g->path,
                        id[EI_VERSION], EV_CURRENT);
    if (g->file_size < sizeof(Elf64_Ehdr))
        return sbx_fail(diag, SBX_E_ELF, "%s: truncated: %zu bytes, an ELF64 header needs %zu",
                        g->path, g->file_size, sizeof(Elf64_Ehdr));
    return 0;
}

static int check_ehdr(const struct sbx_guest *g, const Elf64_Ehdr *eh, struct sbx_diag *diag)
{
    if (eh->e_type != ET_EXEC)
        return sbx_fail(diag, SBX_E_ELF, "%s: e_type is %u (%s); guests must be static ET_EXEC",
                        g->path, eh->e_type,
                        eh->e_type == ET_DYN ? "ET_DYN: a shared object or PIE" : "not executable");
    if (eh->e_machine != EM_X86_64)
        return sbx_fail(diag, SBX_E_ELF, "%s: e_machine is %u; guests must be x86-64 (%u)",
                        g->path, eh->e_machine, EM_X86_64);
    if (eh->e_phnum == 0)
        return sbx_fail(diag, SBX_E_ELF, "%s: no program headers", g->path);
    if (eh->e_phentsize != sizeof(Elf64_Phdr))
        return sbx_fail(diag, SBX_E_ELF, "%s: e_phentsize is %u, expected %zu", g->path,
                        eh->e_phentsize, sizeof(Elf64_Phdr));
    /* libelf hands out pointers into the file for a native-order ELF, so the
     * tables must also be aligned as the ELF specification requires. */
    if (eh->e_phoff % 8 ||
        !in_file(eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr), g->file_size))
        return sbx_fail(diag, SBX_E_ELF,
                        "%s: program header table (e_phoff 0x%llx, %u entries) is not 8-byte "
                        "aligned or runs past the end of the file (%zu bytes)",
                        g->path, (unsigned long long)eh->e_phoff, eh->e_phnum, g->file_size);
    if (eh->e_shoff != 0 &&
        (eh->e_shoff % 8 || eh->e_shentsize != sizeof(Elf64_Shdr) ||
         !in_file(eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr), g->file_size)))
        return sbx_fail(diag, SBX_E_ELF,
                        "%s: section header table (e_shoff 0x%llx, %u entries of %u bytes) is "
                        "not 8-byte aligned or runs past the end of the file (%zu bytes)",
                        g->path, (unsigned long long)eh->e_shoff, eh->e_shnum, eh->e_shentsize,
                        g->file_size);
    return 0;
}

static int check_load(const struct sbx_guest *g, size_t i, const Elf64_Phdr *ph,
                      struct sbx_diag *diag)
{
    if (ph->p_filesz > ph->p_memsz)
        return sbx_fail(diag, SBX_E_ELF, "%s: segment %zu: p_filesz 0x%llx > p_memsz 0x%llx",
                        g->path, i, (unsigned long long)ph->p_filesz,
                        (unsigned long long)ph->p_memsz);
    if (!in_file(ph->p_offset, ph->p_filesz, g->file_size))
        return sbx_fail(diag, SBX_E_ELF,
                        "%s: segment %zu: file range p_offset 0x%llx + p_filesz 0x%llx runs past "
                        "the end of the file (%zu bytes)",
                        g->path, i, (unsigned long long)ph->p_offset,
                        (unsigned long long)ph->p_filesz, g->file_size);
    if (ph->p_vaddr > UINT64_MAX - ph->p_memsz)
        return sbx_fail(diag, SBX_E_ELF, "%s: segment %zu: p_vaddr 0x%llx + p_memsz 0x%llx wraps around",
                        g->path, i, (unsigned long long)ph->p_vaddr, (unsigned long long)ph->p_memsz);
    if (ph->p_vaddr >= SBX_LAYOUT_IMAGE && ph->p_vaddr < SBX_LAYOUT_IMAGE_MAX_END &&
        ph->p_vaddr + ph->p_memsz > SBX_LAYOUT_IMAGE_MAX_END)
        return sbx_fail(diag, SBX_E_ELF,
                        "%s: the guest image is too large: segment %zu ends at 0x%llx, and the "
                        "image must end by 0x%llx (%llu MiB)",
                        g->path, i, (unsigned long long)(ph->p_vaddr + ph->p_memsz),
                        SBX_LAYOUT_IMAGE_MAX_END, SBX_LAYOUT_IMAGE_MAX_END >> 20);
    if (ph->p_vaddr < SBX_LAYOUT_IMAGE || ph->p_vaddr + ph->p_memsz > SBX_LAYOUT_IMAGE_MAX_END)
        return sbx_fail(diag, SBX_E_ELF,
                        "%s: segment %zu: [0x%llx, 0x%llx) is outside the guest image range "
                        "[0x%llx, 0x%llx)",
                        g->path, i, (unsigned long long)ph->p_vaddr,
                        (unsigned long long)(ph->p_vaddr + ph->p_memsz), SBX_LAYOUT_IMAGE,
                        SBX_LAYOUT_IMAGE_MAX_END);
    if (ph->p_align > 1 && ((ph->p_align & (ph->p_align - 1)) != 0 ||
                            (ph->p_vaddr - ph->p_offset) % ph->p_align != 0))
        return sbx_fail(diag, SBX_E_ELF,
                        "%s: segment %zu: p_align 0x%llx is not a power of two dividing "
                        "p_vaddr - p_offset",
                        g->path, i, (unsigned long long)ph->p_align);
    if ((ph->p_flags & PF_W) && (ph->p_flags & PF_X))
        return sbx_fail(diag, SBX_E_ELF, "%s: segment %zu at 0x%llx is both writable and executable",
                        g->path, i, (unsigned long long)ph->p_vaddr);
    return 0;
}

static int cmp_seg(const void *a, const void *b)
{
    const struct sbx_segment *x = a, *y = b;
    return x->vaddr < y->vaddr ? -1 : x->vaddr > y->vaddr;
}

/* Segments must not overlap, and two sharing a page must not make it W+X. */
static int check_overlaps(struct sbx_guest *g, struct sbx_diag *diag)
{
    qsort(g->seg, g->nseg, sizeof g->seg[0], cmp_seg);
    for (size_t i = 1; i < g->nseg; i++) {
        const struct sbx_segment *a = &g->seg[i - 1], *b = &g->seg[i];
        if (b->vaddr < a->vaddr + a->memsz)
            return sbx_fail(diag, SBX_E_ELF,
                            "%s: segments overlap: [0x%llx, 0x%llx) and [0x%llx, 0x%llx)", g->path,
                            (unsigned long long)a->vaddr, (unsigned long long)(a->vaddr + a->memsz),
                            (unsigned long long)b->vaddr, (unsigned long long)(b->vaddr + b->memsz));
        uint64_t a_last_page = (a->vaddr + a->memsz - 1) / SBX_PAGE_SIZE;
        uint32_t both = a->flags | b->flags;
        if (b->vaddr / SBX_PAGE_SIZE == a_last_page && (both & PF_W) && (both & PF_X))
            return sbx_fail(diag, SBX_E_ELF,
                            "%s: segments at 0x%llx and 0x%llx share page 0x%llx, which would be "
                            "both writable and executable",
                            g->path, (unsigned long long)a->vaddr, (unsigned long long)b->vaddr,
                            (unsigned long long)(a_last_page * SBX_PAGE_SIZE));
    }
    return 0;
}

static int collect_segments(struct sbx_guest *g, Elf *e, const Elf64_Ehdr *eh, struct sbx_diag *diag)
{
    Elf64_Phdr *ph = elf64_getphdr(e);
    if (!ph)
        return sbx_fail(diag, SBX_E_ELF, "%s: cannot read program headers: %s", g->path,
                        elf_errmsg(-1));
    for (size_t i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type != PT_LOAD || ph[i].p_memsz == 0)
            continue;
        int rc = check_load(g, i, &ph[i], diag);
        if (rc)
            return rc;
        if (g->nseg == SBX_MAX_SEGMENTS)
            return sbx_fail(diag, SBX_E_ELF, "%s: more than %u PT_LOAD segments", g->path,
                            SBX_MAX_SEGMENTS);
        g->seg[g->nseg++] = (struct sbx_segment){ .vaddr = ph[i].p_vaddr, .memsz = ph[i].p_memsz,
                                                  .offset = ph[i].p_offset, .filesz = ph[i].p_filesz,
                                                  .flags = ph[i].p_flags };
    }
    if (g->nseg == 0)
        return sbx_fail(diag, SBX_E_ELF, "%s: no PT_LOAD segment", g->path);
    int rc = check_overlaps(g, diag);
    if (rc)
        return rc;
    for (size_t i = 0; i < g->nseg; i++)
        if ((g->seg[i].flags & PF_X) && eh->e_entry >= g->seg[i].vaddr &&
            eh->e_entry - g->seg[i].vaddr < g->seg[i].memsz)
            return 0;
    return sbx_fail(diag, SBX_E_ELF, "%s: entry point 0x%llx is not inside an executable segment",
                    g->path, (unsigned long long)eh->e_entry);
}

static int note_in(struct sbx_guest *g, uint64_t off, uint64_t size, uint64_t align,
                   const char *where, struct sbx_diag *diag)
{
    char why[256] = "";
    if (!in_file(off, size, g->file_size))
        return sbx_fail(diag, SBX_E_NOTE,
                        "%s: %s: note range offset 0x%llx size 0x%llx runs past the end of the "
                        "file (%zu bytes)",
                        g->path, where, (unsigned long long)off, (unsigned long long)size,
                        g->file_size);
    int rc = sbx_note_parse(g->file + off, size, align == 8 ? 8 : 4, &g->note, why, sizeof why);
    if (rc < 0)
        return sbx_fail(diag, rc, "%s: %s: %s", g->path, where, why);
    return rc;
}

/* PT_NOTE first: program headers are what the kernel and strip preserve, and
 * they survive a file whose section headers were removed. */
static int find_note(struct sbx_guest *g, Elf *e, const Elf64_Ehdr *eh, struct sbx_diag *diag)
{
    Elf64_Phdr *ph = elf64_getphdr(e);
    char where[64];
    for (size_t i = 0; ph && i < eh->e_phnum; i++) {
        if (ph[i].p_type != PT_NOTE)
            continue;
        snprintf(where, sizeof where, "PT_NOTE program header %zu", i);
        int rc = note_in(g, ph[i].p_offset, ph[i].p_filesz, ph[i].p_align, where, diag);
        if (rc) {
            g->note_src = SBX_NOTE_FROM_PHDR;
            return rc < 0 ? rc : 0;
        }
    }
    if (eh->e_shoff == 0)
        return 0;
    for (Elf_Scn *scn = elf_nextscn(e, NULL); scn; scn = elf_nextscn(e, scn)) {
        Elf64_Shdr *sh = elf64_getshdr(scn);
        if (!sh || sh->sh_type != SHT_NOTE)
            continue;
        snprintf(where, sizeof where, "SHT_NOTE section %zu", elf_ndxscn(scn));
        int rc = note_in(g, sh->sh_offset, sh->sh_size, sh->sh_addralign, where, diag);
        if (rc) {
            g->note_src = SBX_NOTE_FROM_SECTION;
            return rc < 0 ? rc : 0;
        }
    }
    return 0;
}

static int parse(struct sbx_guest *g, struct sbx_diag *diag)
{
    int rc = check_ident(g, diag);
    if (rc)
        return rc;
    if (elf_version(EV_CURRENT) == EV_NONE)
        return sbx_fail(diag, SBX_E_ELF, "libelf is out of date: %s", elf_errmsg(-1));
    Elf *e = elf_memory((char *)g->file, g->file_size);
    if (!e)
        return sbx_fail(diag, SBX_E_ELF, "%s: libelf cannot read it: %s", g->path, elf_errmsg(-1));
    Elf64_Ehdr *eh = elf64_getehdr(e);
    if (!eh) {
        rc = sbx_fail(diag, SBX_E_ELF, "%s: cannot read the ELF header: %s", g->path,
                      elf_errmsg(-1));
        goto out_end;
    }
    rc = check_ehdr(g, eh, diag);
    if (rc)
        goto out_end;
    rc = collect_segments(g, e, eh, diag);
    if (rc)
        goto out_end;
    g->entry = eh->e_entry;
    rc = find_note(g, e, eh, diag);
out_end:
    elf_end(e);
    return rc;
}

/* A guest named name whose file bytes are file (taken over): parse and hash. */
static int guest_from_file(const char *name, uint8_t *file, size_t size, struct sbx_guest **out,
                           struct sbx_diag *diag)
{
    struct sbx_guest *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(name))) {
        free(g);
        free(file);
        return sbx_fail(diag, SBX_E_NOMEM, "%s: out of memory", name);
    }
    g->file = file;
    g->file_size = size;
    int rc = parse(g, diag);
    if (rc) {
        sbx_guest_free(g);
        return rc;
    }
    g->hash = XXH3_64bits(g->file, g->file_size);
    *out = g;
    return 0;
}

int sbx_guest_open(const char *path, struct sbx_guest **out, struct sbx_diag *diag)
{
    if (!path || !out)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_guest_open: path and out are required");
    uint8_t *file = NULL;
    size_t size = 0;
    int rc = sbx_read_file(path, SBX_MAX_GUEST_FILE, &file, &size, diag);
    if (rc)
        return rc;
    return guest_from_file(path, file, size, out, diag);
}

int sbx_guest_from_memory(const void *buf, size_t len, const char *name, struct sbx_guest **out,
                          struct sbx_diag *diag)
{
    if (len > SBX_MAX_GUEST_FILE)
        return sbx_fail(diag, SBX_E_LIMIT, "%s: %zu bytes, larger than the %u-byte limit", name,
                        len, SBX_MAX_GUEST_FILE);
    uint8_t *file = malloc(len ? len : 1);
    if (!file)
        return sbx_fail(diag, SBX_E_NOMEM, "%s: out of memory", name);
    memcpy(file, buf, len);
    return guest_from_file(name, file, len, out, diag);
}

static int check_version(const struct sbx_guest *g, const struct sbx_load_opts *opts,
                         struct sbx_diag *diag)
{
    struct sbx_version host;
    sbx_host_version(&host);
    if (g->note_src == SBX_NOTE_NONE) {
        if (opts->require_note)
            return sbx_fail(diag, SBX_E_NO_NOTE,
                            "%s: no snapbox version note (not built with the guest library?) "
                            "and a note is required; host is snapbox %s",
                            g->path, host.string);
        sbx_logf(opts->log, opts->log_ctx, SBX_LOG_WARN,
                 "%s: no snapbox version note; loading it unchecked against host %s", g->path,
                 host.string);
        return 0;
    }
    return sbx_version_check(&host, &g->note, opts->policy, g->path, diag);
}

int sbx_guest_check_version(const struct sbx_guest *g, const struct sbx_load_opts *opts,
                            struct sbx_diag *diag)
{
    struct sbx_load_opts o;
    int rc = sbx_opts_in(&o, sizeof o, opts, "sbx_load_opts", diag);
    if (rc)
        return rc;
    if (!g)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_guest_check_version: guest is required");
    return check_version(g, &o, diag);
}

int sbx_guest_load(const char *path, const struct sbx_load_opts *opts, struct sbx_guest **out,
                   struct sbx_diag *diag)
{
    struct sbx_load_opts o; /* checked before the file is read */
    struct sbx_guest *g = NULL;
    int rc = sbx_opts_in(&o, sizeof o, opts, "sbx_load_opts", diag);
    if (rc || (rc = sbx_guest_open(path, &g, diag)))
        return rc;
    rc = check_version(g, &o, diag);
    if (rc) {
        sbx_guest_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

void sbx_guest_free(struct sbx_guest *g)
{
    if (!g)
        return;
    free(g->file);
    free(g->path);
    free(g);
}

const char *sbx_guest_path(const struct sbx_guest *g) { return g->path; }
uint64_t sbx_guest_entry(const struct sbx_guest *g) { return g->entry; }
size_t sbx_guest_segment_count(const struct sbx_guest *g) { return g->nseg; }
uint64_t sbx_guest_hash(const struct sbx_guest *g) { return g->hash; }

const struct sbx_segment *sbx_guest_segment(const struct sbx_guest *g, size_t i)
{
    return i < g->nseg ? &g->seg[i] : NULL;
}

enum sbx_note_source sbx_guest_note(const struct sbx_guest *g, struct sbx_version *out)
{
    if (g->note_src != SBX_NOTE_NONE && out)
        *out = g->note;
    return g->note_src;
}
