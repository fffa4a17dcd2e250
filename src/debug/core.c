/* core.c - ELF core files of a guest, in the layout of x86-64 Linux cores
 * that gdb reads (`gdb GUEST.elf CORE`): ET_CORE, a PT_NOTE with NT_PRSTATUS
 * (the general registers), NT_PRPSINFO and NT_FPREGSET (x87 and SSE), then
 * one PT_LOAD per run of non-zero guest pages at the guest's own addresses
 * (snapbox guests are identity mapped: virtual = physical, x86.c). */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/procfs.h>
#include <time.h>
#include <unistd.h>

#include "debug/debug.h"
#include "snapshot/snapshot.h"

#define NOTE_NAME "CORE"
#define NOTE_ALIGN 4u
/* e_phnum is 16 bits; PN_XNUM would move it into a section header. */
#define MAX_PHDRS (PN_XNUM - 1u)

_Static_assert(sizeof(struct user_regs_struct) == sizeof(elf_gregset_t),
               "user_regs_struct is the layout of elf_prstatus.pr_reg");
_Static_assert(sizeof(struct user_fpregs_struct) == 512, "the FXSAVE image");

struct core_plan {
    struct sbx_mem_run *runs; /* what goes into the file, after the limit */
    size_t nruns;
    uint64_t notes_size, data_off;
    bool truncated;
    const struct sbx_core_input *in;
};

static bool page_is_zero(const uint8_t *p)
{
    static const uint8_t zero[SBX_PAGE_SIZE];
    return memcmp(p, zero, sizeof zero) == 0;
}

static bool page_stored(const struct sbx_core_input *in, uint64_t page)
{
    if (in->touched && !((in->touched[page / 64] >> (page % 64)) & 1))
        return false;
    return !page_is_zero(in->mem + page * SBX_PAGE_SIZE);
}

static uint64_t note_size(size_t desc)
{
    uint64_t name = (sizeof NOTE_NAME + NOTE_ALIGN - 1) & ~(uint64_t)(NOTE_ALIGN - 1);
    return sizeof(Elf64_Nhdr) + name + ((desc + NOTE_ALIGN - 1) & ~(uint64_t)(NOTE_ALIGN - 1));
}

/* The runs of non-zero pages, in address order, cut at max_bytes. */
static int plan_core(const struct sbx_core_input *in, struct core_plan *p, struct sbx_diag *diag)
{
    *p = (struct core_plan){ .in = in };
    p->notes_size = note_size(sizeof(struct elf_prstatus)) + note_size(sizeof(struct elf_prpsinfo)) +
                    (in->has_fp ? note_size(sizeof(struct user_fpregs_struct)) : 0);
    uint64_t pages = in->mem_size / SBX_PAGE_SIZE, used = 0;
    size_t cap = 0;
    for (uint64_t pg = 0; pg < pages; pg++) {
        if (!page_stored(in, pg))
            continue;
        struct sbx_mem_run *last = p->nruns ? &p->runs[p->nruns - 1] : NULL;
        if (last && last->gpa + last->len == pg * SBX_PAGE_SIZE) {
            last->len += SBX_PAGE_SIZE;
            used += SBX_PAGE_SIZE;
            continue;
        }
        if (p->nruns == MAX_PHDRS - 1) {
            p->truncated = true;
            break;
        }
        if (p->nruns == cap) {
            cap = cap ? cap * 2 : 64;
            void *grown = realloc(p->runs, cap * sizeof *p->runs);
            if (!grown)
                return sbx_fail(diag, SBX_E_NOMEM, "out of memory for a core file's segments");
            p->runs = grown;
        }
        p->runs[p->nruns++] = (struct sbx_mem_run){ .gpa = pg * SBX_PAGE_SIZE, .len = SBX_PAGE_SIZE };
        used += SBX_PAGE_SIZE;
    }
    /* Cut from the end until headers and data fit. */
    for (;;) {
        /* segments start page-aligned: p_offset matches p_vaddr modulo p_align */
        p->data_off = (sizeof(Elf64_Ehdr) + (p->nruns + 1) * sizeof(Elf64_Phdr) +
                       p->notes_size + SBX_PAGE_SIZE - 1) & ~(SBX_PAGE_SIZE - 1);
        if (p->data_off + used <= in->max_bytes || !p->nruns)
            break;
        struct sbx_mem_run *last = &p->runs[p->nruns - 1];
        uint64_t over = p->data_off + used - in->max_bytes;
        uint64_t cut = (over + SBX_PAGE_SIZE - 1) & ~(SBX_PAGE_SIZE - 1);
        p->truncated = true;
        if (cut >= last->len) {
            used -= last->len;
            p->nruns--;
        } else {
            last->len -= cut;
            used -= cut;
        }
    }
    if (p->data_off > in->max_bytes)
        return sbx_fail(diag, SBX_E_LIMIT, "a core file needs %llu bytes for its headers; the "
                        "limit is %llu (core_dump_max_bytes)",
                        (unsigned long long)p->data_off, (unsigned long long)in->max_bytes);
    return 0;
}

static void put_note(uint8_t **at, uint32_t type, const void *desc, size_t len)
{
    Elf64_Nhdr nh = { .n_namesz = sizeof NOTE_NAME, .n_descsz = (Elf64_Word)len, .n_type = type };
    memcpy(*at, &nh, sizeof nh);
    memcpy(*at + sizeof nh, NOTE_NAME, sizeof NOTE_NAME);
    uint64_t name = (sizeof NOTE_NAME + NOTE_ALIGN - 1) & ~(uint64_t)(NOTE_ALIGN - 1);
    memcpy(*at + sizeof nh + name, desc, len);
    *at += note_size(len);
}

static void prstatus(const struct sbx_core_input *in, struct elf_prstatus *ps)
{
    const struct kvm_regs *r = &in->regs;
    const struct kvm_sregs *s = &in->sregs;
    struct user_regs_struct u = {
        .r15 = r->r15, .r14 = r->r14, .r13 = r->r13, .r12 = r->r12, .rbp = r->rbp,
        .rbx = r->rbx, .r11 = r->r11, .r10 = r->r10, .r9 = r->r9, .r8 = r->r8,
        .rax = r->rax, .rcx = r->rcx, .rdx = r->rdx, .rsi = r->rsi, .rdi = r->rdi,
        .orig_rax = UINT64_MAX, .rip = r->rip, .cs = s->cs.selector, .eflags = r->rflags,
        .rsp = r->rsp, .ss = s->ss.selector, .fs_base = s->fs.base, .gs_base = s->gs.base,
        .ds = s->ds.selector, .es = s->es.selector, .fs = s->fs.selector, .gs = s->gs.selector,
    };
    memset(ps, 0, sizeof *ps);
    ps->pr_cursig = (short)in->signo;
    ps->pr_info.si_signo = in->signo;
    ps->pr_pid = ps->pr_ppid = ps->pr_pgrp = ps->pr_sid = 1;
    memcpy(&ps->pr_reg, &u, sizeof u);
    ps->pr_fpvalid = in->has_fp;
}

/* The ELF header, program headers and notes: everything before the data. */
static uint8_t *core_head(const struct core_plan *p)
{
    const struct sbx_core_input *in = p->in;
    uint8_t *buf = calloc(1, p->data_off);
    if (!buf)
        return NULL;
    Elf64_Ehdr eh = { .e_type = ET_CORE, .e_machine = EM_X86_64, .e_version = EV_CURRENT,
                      .e_phoff = sizeof eh, .e_ehsize = sizeof eh,
                      .e_phentsize = sizeof(Elf64_Phdr), .e_phnum = (Elf64_Half)(p->nruns + 1) };
    memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_ident[EI_OSABI] = ELFOSABI_NONE; /* as Linux writes its cores */
    memcpy(buf, &eh, sizeof eh);
    Elf64_Phdr *ph = (Elf64_Phdr *)(buf + sizeof eh);
    uint64_t notes_off = sizeof eh + (p->nruns + 1) * sizeof *ph;
    ph[0] = (Elf64_Phdr){ .p_type = PT_NOTE, .p_offset = notes_off, .p_filesz = p->notes_size,
                          .p_align = NOTE_ALIGN };
    uint64_t off = p->data_off;
    for (size_t i = 0; i < p->nruns; i++) {
        ph[i + 1] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R | PF_W | PF_X,
                                  .p_offset = off, .p_vaddr = p->runs[i].gpa,
                                  .p_paddr = p->runs[i].gpa, .p_filesz = p->runs[i].len,
                                  .p_memsz = p->runs[i].len, .p_align = SBX_PAGE_SIZE };
        off += p->runs[i].len;
    }
    uint8_t *at = buf + notes_off;
    struct elf_prstatus ps;
    prstatus(in, &ps);
    put_note(&at, NT_PRSTATUS, &ps, sizeof ps);
    struct elf_prpsinfo pi = { .pr_state = 'R', .pr_sname = 'R', .pr_pid = 1 };
    snprintf(pi.pr_fname, sizeof pi.pr_fname, "%s", in->name ? in->name : "guest");
    snprintf(pi.pr_psargs, sizeof pi.pr_psargs, "%s", in->name ? in->name : "guest");
    put_note(&at, NT_PRPSINFO, &pi, sizeof pi);
    if (in->has_fp)
        put_note(&at, NT_FPREGSET, &in->fp, sizeof in->fp);
    return buf;
}

static int fill_core(int fd, const struct core_plan *p, const char *path, struct sbx_diag *diag)
{
    uint8_t *head = core_head(p);
    if (!head)
        return sbx_fail(diag, SBX_E_NOMEM, "%s: out of memory for the core file's headers", path);
    int ok = sbx_write_all(fd, head, p->data_off) == 0;
    free(head);
    for (size_t i = 0; i < p->nruns && ok; i++)
        ok = sbx_write_all(fd, p->in->mem + p->runs[i].gpa, p->runs[i].len) == 0;
    if (!ok)
        return sbx_fail(diag, SBX_E_IO, "%s: writing the core file failed: %s", path,
                        strerror(errno));
    return 0;
}

int sbx_core_write(const struct sbx_core_input *in, const char *path, bool *truncated,
                   struct sbx_diag *diag)
{
    struct core_plan p;
    struct sbx_atomic a;
    int rc = plan_core(in, &p, diag);
    if (rc == 0 && (rc = sbx_atomic_begin(&a, path, 0600, diag)) == 0) { /* it holds guest memory */
        if ((rc = fill_core(a.fd, &p, path, diag)) == 0)
            rc = sbx_atomic_commit(&a, diag);
        else
            sbx_atomic_abort(&a);
    }
    if (rc == 0 && truncated)
        *truncated = p.truncated;
    free(p.runs);
    return rc;
}

/* ---- A snapshot file as a core file ---------------------------------------- */

/* A bit per page the snapshot stores (the rest of its memory is zero). */
static uint64_t *stored_pages(const struct sbx_snapshot *snap)
{
    uint64_t pages = snap->hdr->mem_size / SBX_PAGE_SIZE;
    uint64_t *bits = calloc((pages + 63) / 64, sizeof *bits);
    for (uint32_t i = 0; bits && i < snap->hdr->nchunks; i++) {
        const struct sbx_snap_chunk *c = &snap->index[i];
        for (uint64_t pg = c->gpa / SBX_PAGE_SIZE; pg < (c->gpa + c->raw_size) / SBX_PAGE_SIZE; pg++)
            bits[pg / 64] |= 1ull << (pg % 64);
    }
    return bits;
}

int sbx_snapshot_write_core(const struct sbx_snapshot *snap, const char *path, uint64_t max_bytes,
                            bool *truncated, struct sbx_diag *diag)
{
    if (!snap || !path || !snap->complete)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_snapshot_write_core: a snapshot opened with "
                        "sbx_snapshot_open and a path are required");
    const struct sbx_vcpu_state *st = &snap->meta->vcpu;
    struct sbx_core_input in = { .mem_size = snap->hdr->mem_size, .regs = st->regs,
                                 .sregs = st->sregs, .name = snap->path,
                                 .max_bytes = max_bytes ? max_bytes : SBX_DEFAULT_CORE_MAX_BYTES };
    if (st->xsave_size >= sizeof in.fp) {
        memcpy(&in.fp, st->xsave, sizeof in.fp);
        in.has_fp = true;
    }
    const char *slash = strrchr(snap->path, '/');
    in.name = slash ? slash + 1 : snap->path;
    /* Untouched pages of an anonymous mapping cost nothing: only the stored ones fill. */
    uint8_t *mem = mmap(NULL, in.mem_size, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED)
        return sbx_fail(diag, SBX_E_NOMEM, "%s: out of memory for %llu bytes of guest memory",
                        snap->path, (unsigned long long)in.mem_size);
    uint64_t *bits = stored_pages(snap);
    int rc = bits ? 0 : sbx_fail(diag, SBX_E_NOMEM, "out of memory");
    for (uint32_t i = 0; i < snap->hdr->nchunks && rc == 0; i++)
        rc = sbx_snap_decode_chunk(snap, i, mem + snap->index[i].gpa, diag);
    in.mem = mem;
    in.touched = bits;
    if (rc == 0)
        rc = sbx_core_write(&in, path, truncated, diag);
    free(bits);
    munmap(mem, in.mem_size);
    return rc;
}

/* ---- Core files of failed calls --------------------------------------------- */

int sbx_core_signal(int rc, int vector)
{
    if (rc == SBX_E_GUEST_ABORT)
        return SIGABRT;
    if (rc == SBX_E_TIMEOUT)
        return SIGXCPU;
    switch (vector) {
    case 0: case 16: case 19: return SIGFPE;  /* #DE, #MF, #XM */
    case 6: return SIGILL;                    /* #UD */
    case 1: case 3: return SIGTRAP;           /* #DB, #BP */
    case 17: return SIGBUS;                   /* #AC */
    default: return SIGSEGV;
    }
}

static int count_cores(const char *dir, uint32_t *n, struct sbx_diag *diag)
{
    DIR *d = opendir(dir);
    if (!d)
        return sbx_fail(diag, SBX_E_IO, "cannot open %s: %s", dir, strerror(errno));
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len > 5 && !strcmp(e->d_name + len - 5, ".core"))
            (*n)++;
    }
    closedir(d);
    return 0;
}

/* A template's sandboxes are named by template.c's caller: its file. */
static const char *sandbox_name(struct sbx_sandbox *s)
{
    if (!s->name[0] && s->tpl && s->tpl->path)
        sbx_sandbox_set_name(s, s->tpl->path);
    return s->name[0] ? s->name : "sandbox";
}

/* DIR/NAME-YYYYMMDDTHHMMSSZ-PID-N.core: unique in this process, sorted by time. */
static char *core_path(struct sbx_sandbox *s, const char *dir)
{
    static atomic_uint seq;
    char stamp[32];
    struct tm tm;
    time_t now = time(NULL);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", gmtime_r(&now, &tm));
    const char *name = sandbox_name(s);
    size_t cap = strlen(dir) + strlen(name) + 96;
    char *path = malloc(cap);
    if (path)
        snprintf(path, cap, "%s/%s-%s-%ld-%u.core", dir, name, stamp, (long)getpid(),
                 atomic_fetch_add(&seq, 1));
    return path;
}

/* The vCPU as it stopped; a fault's registers are those of the faulting code. */
static int live_input(struct sbx_sandbox *s, int rc, struct sbx_core_input *in,
                      struct sbx_diag *diag)
{
    int fd = s->vm.vcpu_fd;
    struct kvm_fpu fpu;
    if (ioctl(fd, KVM_GET_REGS, &in->regs) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_GET_REGS");
    if (ioctl(fd, KVM_GET_SREGS, &in->sregs) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_GET_SREGS");
    if (ioctl(fd, KVM_GET_FPU, &fpu) == 0) {
        struct user_fpregs_struct *f = &in->fp;
        f->cwd = fpu.fcw, f->swd = fpu.fsw, f->ftw = fpu.ftwx, f->fop = fpu.last_opcode;
        f->rip = fpu.last_ip, f->rdp = fpu.last_dp, f->mxcsr = fpu.mxcsr;
        f->mxcr_mask = 0xffff;
        for (int i = 0; i < 8; i++)
            memcpy(&f->st_space[i * 4], fpu.fpr[i], sizeof fpu.fpr[i]);
        memcpy(f->xmm_space, fpu.xmm, sizeof fpu.xmm);
        in->has_fp = true;
    }
    int vector = rc == SBX_E_GUEST_FAULT ? sbx_fault_regs(&s->vm, &in->regs) : -1;
    in->signo = sbx_core_signal(rc, vector);
    in->mem = s->vm.mem;
    in->mem_size = s->vm.mem_size;
    in->name = sandbox_name(s);
    in->max_bytes = s->cfg.core_dump_max_bytes ? s->cfg.core_dump_max_bytes
                                               : SBX_DEFAULT_CORE_MAX_BYTES;
    return 0;
}

/* Write the core; the sentence for the caller's message into note. */
static void dump(struct sbx_sandbox *s, int rc, char *note, size_t cap)
{
    struct sbx_diag why = { 0 };
    const char *dir = s->cfg.core_dump_dir;
    uint32_t max_files = s->cfg.core_dump_max_files ? s->cfg.core_dump_max_files
                                                    : SBX_DEFAULT_CORE_MAX_FILES;
    struct sbx_core_input in = { 0 };
    uint32_t n = 0;
    char *path = NULL;
    bool truncated = false;
    if (count_cores(dir, &n, &why) || live_input(s, rc, &in, &why))
        goto fail;
    if (n >= max_files) {
        snprintf(note, cap, "; no core dump: %s already holds %u core files "
                 "(core_dump_max_files %u)", dir, n, max_files);
        return;
    }
    in.touched = sbx_sandbox_touched_pages(s);
    path = core_path(s, dir);
    if (!path)
        sbx_fail(&why, SBX_E_NOMEM, "out of memory");
    else if (sbx_core_write(&in, path, &truncated, &why) == 0)
        snprintf(note, cap, "; core dump: %s%s", path,
                 truncated ? " (memory past core_dump_max_bytes left out)" : "");
    free((void *)in.touched);
    free(path);
    if (!why.code)
        return;
fail:
    snprintf(note, cap, "; no core dump: %.400s", why.msg);
}

void sbx_core_after_failure(struct sbx_sandbox *s, int rc, struct sbx_diag *diag)
{
    if (!s->cfg.core_dump_dir ||
        (rc != SBX_E_GUEST_FAULT && rc != SBX_E_GUEST_ABORT && rc != SBX_E_TIMEOUT))
        return;
    char note[SBX_DIAG_MSG_MAX];
    dump(s, rc, note, sizeof note);
    if (diag) {
        size_t len = strnlen(diag->msg, sizeof diag->msg);
        snprintf(diag->msg + len, sizeof diag->msg - len, "%s", note);
    }
}
