/* reset.c - sandboxes from templates, and putting them back after a request. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "snapshot.h"

/* A pooled VM when one fits, else a fresh one; memory set up for the mode. */
static int get_vm(struct sbx_sandbox *s, const struct sbx_template *t, struct sbx_pool *pool,
                  struct sbx_diag *diag)
{
    bool cow = s->cfg.mem_mode == SBX_MEM_COW;
    if (pool && sbx_pool_take(pool, t->mem_size, &s->vm))
        return cow ? sbx_vm_map_cow(&s->vm, t->memfd, diag) : 0;
    struct sbx_vm_opts o = { .memfd = cow ? t->memfd : -1, .dirty_log = true };
    return sbx_vm_create(&s->vm, t->mem_size, &o, diag);
}

static int check_cpu_once(const struct sbx_template *t, const struct sbx_vm *vm,
                          struct sbx_diag *diag)
{
    /* The flag is the template's only mutable field: a cache, not its content. */
    atomic_int *checked = (atomic_int *)&t->cpu_checked;
    if (atomic_load_explicit(checked, memory_order_acquire))
        return 0;
    int rc = sbx_snap_check_cpu(t->hdr, t->path, vm, diag);
    if (rc == 0)
        atomic_store_explicit(checked, 1, memory_order_release);
    return rc;
}

int sbx_sandbox_from_template(const struct sbx_template *t, const struct sbx_config *cfg,
                              struct sbx_pool *pool, struct sbx_sandbox **out,
                              struct sbx_diag *diag)
{
    if (!t || !out)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_sandbox_from_template: template and out are required");
    struct sbx_sandbox *s = NULL;
    int rc = sbx_sandbox_alloc(cfg, t->mem_size, &s, diag);
    if (rc)
        return rc;
    sbx_template_hold(t);
    sbx_sandbox_set_template(s, t);
    rc = get_vm(s, t, pool, diag);
    if (rc || (rc = check_cpu_once(t, &s->vm, diag)))
        goto err;
    if (s->cfg.mem_mode == SBX_MEM_COPY) /* the VM's memory is all zero until now */
        for (uint32_t r = 0; r < t->nruns; r++) {
            /* one call faults the run in, not a fault per page (advice: the
             * copy faults it in anyway where the kernel lacks it) */
            madvise(s->vm.mem + t->runs[r].gpa, t->runs[r].len, MADV_POPULATE_WRITE);
            memcpy(s->vm.mem + t->runs[r].gpa, t->mem + t->runs[r].gpa, t->runs[r].len);
        }
    rc = sbx_snap_apply_header(s, t->hdr, diag);
    if (rc)
        goto err;
    *out = s;
    return 0;
err:
    sbx_diag_prefix(diag, "%s: restore from template", t->path);
    sbx_sandbox_destroy(s);
    return rc;
}

/* The host writes call arguments and results into the exchange area, which
 * KVM does not log (its other writes, random bytes, sbx_vm_get_dirty adds). */
static void mark_host_writes(struct sbx_sandbox *s)
{
    uint64_t first = s->vm.xchg_gpa / SBX_PAGE_SIZE;
    uint64_t last = (sbx_xchg_data_gpa(&s->vm) + s->xchg_dirty_hi + SBX_PAGE_SIZE - 1) /
                    SBX_PAGE_SIZE;
    for (uint64_t p = first; p < last; p++)
        s->vm.dirty[p / 64] |= 1ull << (p % 64);
}

static bool page_bit(const uint64_t *bits, uint64_t p) { return (bits[p / 64] >> (p % 64)) & 1; }

/* Private copies are dropped: a copy-on-write sandbox's pages read the sealed
 * template again, anonymous ones read zero. */
static int drop_pages(struct sbx_sandbox *s, uint64_t first, uint64_t npages, struct sbx_diag *diag)
{
    if (madvise(s->vm.mem + first * SBX_PAGE_SIZE, npages * SBX_PAGE_SIZE, MADV_DONTNEED) < 0)
        return sbx_fail(diag, SBX_E_NOMEM, "reset: dropping %llu written pages failed: %s",
                        (unsigned long long)npages, strerror(errno));
    return 0;
}

/* A page the template does not store and the working set does not hold goes
 * back to the kernel instead of staying resident as zeros. */
static bool give_back(const struct sbx_sandbox *s, uint64_t p)
{
    return s->keep && !page_bit(s->keep, p) && !sbx_template_page_stored(s->tpl, p);
}

/* Pages [first, end): runs of pages to give back go to the kernel, one
 * madvise each; every other page goes to keep_page, when there is one. */
static int walk(struct sbx_sandbox *s, uint64_t first, uint64_t end,
                void (*keep_page)(struct sbx_sandbox *s, uint64_t p), struct sbx_diag *diag)
{
    uint64_t run = 0; /* pages just before p to give back */
    for (uint64_t p = first; p <= end; p++) {
        if (p < end && give_back(s, p)) {
            run++;
            continue;
        }
        int rc = run ? drop_pages(s, p - run, run, diag) : 0;
        if (rc)
            return rc;
        run = 0;
        if (p < end && keep_page)
            keep_page(s, p);
    }
    return 0;
}

static void copy_page(struct sbx_sandbox *s, uint64_t p)
{
    uint8_t *dst = s->vm.mem + p * SBX_PAGE_SIZE;
    if (sbx_template_page_stored(s->tpl, p))
        memcpy(dst, s->tpl->mem + p * SBX_PAGE_SIZE, SBX_PAGE_SIZE);
    else
        memset(dst, 0, SBX_PAGE_SIZE);
}

/* The first reset after a sandbox learns its working set gives back what
 * earlier requests left resident outside it. */
static int trim(struct sbx_sandbox *s, struct sbx_diag *diag)
{
    int rc = walk(s, 0, s->vm.mem_size / SBX_PAGE_SIZE, NULL, diag);
    if (rc == 0)
        sbx_sandbox_set_trimmed(s);
    return rc;
}

/* Undo every run of dirty pages in the bitmap. */
static int restore_dirty(struct sbx_sandbox *s, struct sbx_diag *diag)
{
    uint64_t *bits = s->vm.dirty, pages = s->vm.mem_size / SBX_PAGE_SIZE;
    uint64_t p = 0;
    while (p < pages) {
        uint64_t w = bits[p / 64] >> (p % 64);
        if (!w) {
            p = (p / 64 + 1) * 64;
            continue;
        }
        p += (uint64_t)__builtin_ctzll(w);
        uint64_t end = p;
        while (end < pages && ((bits[end / 64] >> (end % 64)) & 1))
            end++;
        int rc = s->cfg.mem_mode == SBX_MEM_COW ? drop_pages(s, p, end - p, diag)
                                                : walk(s, p, end, copy_page, diag);
        if (rc)
            return rc;
        p = end;
    }
    return 0;
}

int sbx_sandbox_reset(struct sbx_sandbox *s, struct sbx_diag *diag)
{
    if (!s)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_sandbox_reset: sandbox is required");
    if (!s->tpl)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_sandbox_reset: this sandbox was not made by "
                        "sbx_sandbox_from_template, so it has no template to go back to");
    if (atomic_load(&s->in_call))
        return sbx_fail(diag, SBX_E_BUSY, "sbx_sandbox_reset: the sandbox is in a call");
    /* gdb may have written guest memory (M packets) that no dirty log saw. */
    if (s->gdb)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_sandbox_reset: a sandbox debugged through gdb "
                        "(gdb_addr) is a debugging session only and cannot be reset");
    /* Drain what the last request left in flight (its OUT, a split MMIO
     * access) now, so it cannot complete after the template's state is set. */
    int rc = sbx_vcpu_finish_io(&s->vm, diag);
    if (rc || (rc = sbx_vm_get_dirty(&s->vm, diag)))
        goto done;
    mark_host_writes(s);
    rc = restore_dirty(s, diag);
    if (rc == 0 && s->keep && !s->trimmed)
        rc = trim(s, diag);
    /* The function table and guest facts cannot change: only the vCPU goes back. */
    if (rc == 0)
        rc = sbx_vcpu_load(&s->vm, s->reset_state, diag);
done:
    sbx_sandbox_after_reset(s, rc == 0);
    return rc;
}
