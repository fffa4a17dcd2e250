/* vcpu_record.c - the one place that converts between struct sbx_vcpu_state
 * (kernel structs, internal) and the snapshot's own fixed-width records.
 * Encoding trusts the state (it comes from KVM, checked once); decoding
 * trusts nothing (the bytes come from a file). */
#include <string.h>

#include "snapshot.h"

static void seg_out(struct sbx_snap_segment *o, const struct kvm_segment *k)
{
    *o = (struct sbx_snap_segment){
        .base = k->base, .limit = k->limit, .selector = k->selector, .type = k->type,
        .present = k->present, .dpl = k->dpl, .db = k->db, .s = k->s, .l = k->l, .g = k->g,
        .avl = k->avl, .unusable = k->unusable,
    };
}

static void seg_in(struct kvm_segment *k, const struct sbx_snap_segment *o)
{
    *k = (struct kvm_segment){
        .base = o->base, .limit = o->limit, .selector = o->selector, .type = o->type,
        .present = o->present, .dpl = o->dpl, .db = o->db, .s = o->s, .l = o->l, .g = o->g,
        .avl = o->avl, .unusable = o->unusable,
    };
}

static void regs_out(struct sbx_snap_vcpu *r, const struct kvm_regs *k)
{
    r->rax = k->rax, r->rbx = k->rbx, r->rcx = k->rcx, r->rdx = k->rdx;
    r->rsi = k->rsi, r->rdi = k->rdi, r->rsp = k->rsp, r->rbp = k->rbp;
    r->r8 = k->r8, r->r9 = k->r9, r->r10 = k->r10, r->r11 = k->r11;
    r->r12 = k->r12, r->r13 = k->r13, r->r14 = k->r14, r->r15 = k->r15;
    r->rip = k->rip, r->rflags = k->rflags;
}

static void regs_in(struct kvm_regs *k, const struct sbx_snap_vcpu *r)
{
    k->rax = r->rax, k->rbx = r->rbx, k->rcx = r->rcx, k->rdx = r->rdx;
    k->rsi = r->rsi, k->rdi = r->rdi, k->rsp = r->rsp, k->rbp = r->rbp;
    k->r8 = r->r8, k->r9 = r->r9, k->r10 = r->r10, k->r11 = r->r11;
    k->r12 = r->r12, k->r13 = r->r13, k->r14 = r->r14, k->r15 = r->r15;
    k->rip = r->rip, k->rflags = r->rflags;
}

_Static_assert(sizeof(((struct kvm_sregs *)0)->interrupt_bitmap) ==
                   sizeof(((struct sbx_snap_vcpu *)0)->interrupt_bitmap),
               "interrupt bitmap width");

static void sregs_out(struct sbx_snap_vcpu *r, const struct kvm_sregs *k)
{
    seg_out(&r->cs, &k->cs), seg_out(&r->ds, &k->ds), seg_out(&r->es, &k->es);
    seg_out(&r->fs, &k->fs), seg_out(&r->gs, &k->gs), seg_out(&r->ss, &k->ss);
    seg_out(&r->tr, &k->tr), seg_out(&r->ldt, &k->ldt);
    r->gdt = (struct sbx_snap_dtable){ .base = k->gdt.base, .limit = k->gdt.limit };
    r->idt = (struct sbx_snap_dtable){ .base = k->idt.base, .limit = k->idt.limit };
    r->cr0 = k->cr0, r->cr2 = k->cr2, r->cr3 = k->cr3, r->cr4 = k->cr4, r->cr8 = k->cr8;
    r->efer = k->efer, r->apic_base = k->apic_base;
    memcpy(r->interrupt_bitmap, k->interrupt_bitmap, sizeof r->interrupt_bitmap);
}

static void sregs_in(struct kvm_sregs *k, const struct sbx_snap_vcpu *r)
{
    seg_in(&k->cs, &r->cs), seg_in(&k->ds, &r->ds), seg_in(&k->es, &r->es);
    seg_in(&k->fs, &r->fs), seg_in(&k->gs, &r->gs), seg_in(&k->ss, &r->ss);
    seg_in(&k->tr, &r->tr), seg_in(&k->ldt, &r->ldt);
    k->gdt = (struct kvm_dtable){ .base = r->gdt.base, .limit = r->gdt.limit };
    k->idt = (struct kvm_dtable){ .base = r->idt.base, .limit = r->idt.limit };
    k->cr0 = r->cr0, k->cr2 = r->cr2, k->cr3 = r->cr3, k->cr4 = r->cr4, k->cr8 = r->cr8;
    k->efer = r->efer, k->apic_base = r->apic_base;
    memcpy(k->interrupt_bitmap, r->interrupt_bitmap, sizeof k->interrupt_bitmap);
}

static void debug_out(struct sbx_snap_vcpu *r, const struct kvm_debugregs *k)
{
    r->dr0 = k->db[0], r->dr1 = k->db[1], r->dr2 = k->db[2], r->dr3 = k->db[3];
    r->dr6 = k->dr6, r->dr7 = k->dr7;
}

static void debug_in(struct kvm_debugregs *k, const struct sbx_snap_vcpu *r)
{
    k->db[0] = r->dr0, k->db[1] = r->dr1, k->db[2] = r->dr2, k->db[3] = r->dr3;
    k->dr6 = r->dr6, k->dr7 = r->dr7;
}

static void events_out(struct sbx_snap_vcpu *r, const struct kvm_vcpu_events *e)
{
    r->exception_injected = e->exception.injected, r->exception_nr = e->exception.nr;
    r->exception_has_error_code = e->exception.has_error_code;
    r->exception_pending = e->exception.pending;
    r->exception_error_code = e->exception.error_code;
    r->exception_has_payload = e->exception_has_payload;
    r->exception_payload = e->exception_payload;
    r->interrupt_injected = e->interrupt.injected, r->interrupt_nr = e->interrupt.nr;
    r->interrupt_soft = e->interrupt.soft, r->interrupt_shadow = e->interrupt.shadow;
    r->nmi_injected = e->nmi.injected, r->nmi_pending = e->nmi.pending;
    r->nmi_masked = e->nmi.masked;
    r->smi_smm = e->smi.smm, r->smi_pending = e->smi.pending;
    r->smi_inside_nmi = e->smi.smm_inside_nmi, r->smi_latched_init = e->smi.latched_init;
    r->triple_fault_pending = e->triple_fault.pending;
    r->sipi_vector = e->sipi_vector, r->events_flags = e->flags;
}

static void events_in(struct kvm_vcpu_events *e, const struct sbx_snap_vcpu *r)
{
    e->exception.injected = r->exception_injected, e->exception.nr = r->exception_nr;
    e->exception.has_error_code = r->exception_has_error_code;
    e->exception.pending = r->exception_pending;
    e->exception.error_code = r->exception_error_code;
    e->exception_has_payload = r->exception_has_payload;
    e->exception_payload = r->exception_payload;
    e->interrupt.injected = r->interrupt_injected, e->interrupt.nr = r->interrupt_nr;
    e->interrupt.soft = r->interrupt_soft, e->interrupt.shadow = r->interrupt_shadow;
    e->nmi.injected = r->nmi_injected, e->nmi.pending = r->nmi_pending;
    e->nmi.masked = r->nmi_masked;
    e->smi.smm = r->smi_smm, e->smi.pending = r->smi_pending;
    e->smi.smm_inside_nmi = r->smi_inside_nmi, e->smi.latched_init = r->smi_latched_init;
    e->triple_fault.pending = r->triple_fault_pending;
    e->sipi_vector = r->sipi_vector, e->flags = r->events_flags;
}

static void xcrs_out(struct sbx_snap_vcpu *r, const struct kvm_xcrs *k)
{
    r->nxcrs = k->nr_xcrs, r->xcrs_flags = k->flags;
    for (uint32_t i = 0; i < k->nr_xcrs; i++)
        r->xcrs[i] = (struct sbx_snap_xcr){ .index = k->xcrs[i].xcr, .value = k->xcrs[i].value };
}

static void xcrs_in(struct kvm_xcrs *k, const struct sbx_snap_vcpu *r)
{
    k->nr_xcrs = r->nxcrs, k->flags = r->xcrs_flags;
    for (uint32_t i = 0; i < r->nxcrs; i++)
        k->xcrs[i] = (struct kvm_xcr){ .xcr = r->xcrs[i].index, .value = r->xcrs[i].value };
}

_Static_assert(SBX_SNAP_MAX_XCRS <= KVM_MAX_XCRS, "XCR slots");

int sbx_vcpu_record_check(const struct sbx_vcpu_state *st, struct sbx_diag *diag)
{
    if (st->xcrs.nr_xcrs > SBX_SNAP_MAX_XCRS || st->nmsrs > SBX_MAX_MSRS ||
        st->ncpuid > SBX_MAX_CPUID || st->xsave_size < 4096 || st->xsave_size > SBX_XSAVE_MAX ||
        st->xsave_size % 4)
        return sbx_fail(diag, SBX_E_INVAL, "vCPU state out of range: %u XCRs, %u MSRs, %u CPUID "
                        "entries, %u XSAVE bytes", st->xcrs.nr_xcrs, st->nmsrs, st->ncpuid,
                        st->xsave_size);
    return 0;
}

uint64_t sbx_vcpu_record_size(const struct sbx_vcpu_state *st)
{
    return sbx_snap_section_size(sizeof(struct sbx_snap_vcpu)) +
           sbx_snap_section_size((uint64_t)st->nmsrs * sizeof(struct sbx_snap_msr)) +
           sbx_snap_section_size((uint64_t)st->ncpuid * sizeof(struct sbx_snap_cpuid)) +
           sbx_snap_section_size(st->xsave_size);
}

static void put_msrs(struct sbx_snap_writer *w, const struct sbx_vcpu_state *st)
{
    uint8_t *p = sbx_snap_put_section(w, SBX_SNAP_SEC_MSRS, st->nmsrs * sizeof(struct sbx_snap_msr));
    for (uint32_t i = 0; i < st->nmsrs; i++) {
        struct sbx_snap_msr m = { .index = st->msrs[i].index, .value = st->msrs[i].data };
        memcpy(p + i * sizeof m, &m, sizeof m);
    }
}

static void put_cpuid(struct sbx_snap_writer *w, const struct sbx_vcpu_state *st)
{
    uint8_t *p = sbx_snap_put_section(w, SBX_SNAP_SEC_CPUID,
                                      st->ncpuid * sizeof(struct sbx_snap_cpuid));
    for (uint32_t i = 0; i < st->ncpuid; i++) {
        const struct kvm_cpuid_entry2 *e = &st->cpuid[i];
        struct sbx_snap_cpuid c = { .function = e->function, .index = e->index, .flags = e->flags,
                                    .eax = e->eax, .ebx = e->ebx, .ecx = e->ecx, .edx = e->edx };
        memcpy(p + i * sizeof c, &c, sizeof c);
    }
}

void sbx_vcpu_record_put(struct sbx_snap_writer *w, const struct sbx_vcpu_state *st)
{
    struct sbx_snap_vcpu r;
    memset(&r, 0, sizeof r);
    regs_out(&r, &st->regs);
    sregs_out(&r, &st->sregs);
    debug_out(&r, &st->debugregs);
    events_out(&r, &st->events);
    xcrs_out(&r, &st->xcrs);
    memcpy(sbx_snap_put_section(w, SBX_SNAP_SEC_VCPU, sizeof r), &r, sizeof r);
    put_msrs(w, st);
    put_cpuid(w, st);
    memcpy(sbx_snap_put_section(w, SBX_SNAP_SEC_XSAVE, st->xsave_size), st->xsave, st->xsave_size);
}

static bool all_zero(const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++)
        if (b[i])
            return false;
    return true;
}

static int get_vcpu(const uint8_t *p, uint64_t len, struct sbx_vcpu_state *st, const char *path,
                    struct sbx_diag *diag)
{
    struct sbx_snap_vcpu r;
    if (len != sizeof r)
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: VCPU section is %llu bytes, expected %zu",
                        path, (unsigned long long)len, sizeof r);
    memcpy(&r, p, sizeof r);
    if (r.nxcrs > SBX_SNAP_MAX_XCRS || !all_zero(r.reserved0, sizeof r.reserved0) ||
        r.reserved1 || !all_zero(r.reserved2, sizeof r.reserved2))
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: VCPU section: %u XCRs (at most %u) or "
                        "reserved fields set", path, r.nxcrs, SBX_SNAP_MAX_XCRS);
    regs_in(&st->regs, &r);
    sregs_in(&st->sregs, &r);
    debug_in(&st->debugregs, &r);
    events_in(&st->events, &r);
    xcrs_in(&st->xcrs, &r);
    return 0;
}

/* MSRs strictly ascending: the state's list is sorted, and a duplicate would
 * let a file set one MSR twice. */
static int get_msrs(const uint8_t *p, uint64_t len, struct sbx_vcpu_state *st, const char *path,
                    struct sbx_diag *diag)
{
    uint64_t n = len / sizeof(struct sbx_snap_msr);
    if (len % sizeof(struct sbx_snap_msr) || n > SBX_MAX_MSRS)
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: MSRS section is %llu bytes: not a whole "
                        "number of entries, or more than %u", path, (unsigned long long)len,
                        SBX_MAX_MSRS);
    for (uint32_t i = 0; i < n; i++) {
        struct sbx_snap_msr m;
        memcpy(&m, p + i * sizeof m, sizeof m);
        if (m.reserved || (i && m.index <= st->msrs[i - 1].index))
            return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: MSR %u (index 0x%x) is out of order, "
                            "repeated or has reserved bits", path, i, m.index);
        st->msrs[i] = (struct kvm_msr_entry){ .index = m.index, .data = m.value };
    }
    st->nmsrs = (uint32_t)n;
    return 0;
}

static int get_cpuid(const uint8_t *p, uint64_t len, struct sbx_vcpu_state *st, const char *path,
                     struct sbx_diag *diag)
{
    uint64_t n = len / sizeof(struct sbx_snap_cpuid);
    if (len % sizeof(struct sbx_snap_cpuid) || n > SBX_MAX_CPUID)
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: CPUID section is %llu bytes: not a whole "
                        "number of entries, or more than %u", path, (unsigned long long)len,
                        SBX_MAX_CPUID);
    for (uint32_t i = 0; i < n; i++) {
        struct sbx_snap_cpuid c;
        memcpy(&c, p + i * sizeof c, sizeof c);
        if (c.reserved || (c.flags & ~SBX_SNAP_CPUID_FLAGS))
            return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: CPUID entry %u (function 0x%x) has "
                            "unknown flags 0x%x or reserved bits", path, i, c.function, c.flags);
        st->cpuid[i] = (struct kvm_cpuid_entry2){ .function = c.function, .index = c.index,
                                                  .flags = c.flags, .eax = c.eax, .ebx = c.ebx,
                                                  .ecx = c.ecx, .edx = c.edx };
    }
    st->ncpuid = (uint32_t)n;
    return 0;
}

static int get_xsave(const uint8_t *p, uint64_t len, struct sbx_vcpu_state *st, const char *path,
                     struct sbx_diag *diag)
{
    if (len < 4096 || len > SBX_XSAVE_MAX || len % 4)
        return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: XSAVE section is %llu bytes; a multiple "
                        "of 4 from 4096 to %u expected", path, (unsigned long long)len,
                        SBX_XSAVE_MAX);
    memcpy(st->xsave, p, len);
    st->xsave_size = (uint32_t)len;
    return 0;
}

int sbx_vcpu_record_get(uint32_t type, const uint8_t *p, uint64_t len, struct sbx_vcpu_state *st,
                        const char *path, struct sbx_diag *diag)
{
    switch (type) {
    case SBX_SNAP_SEC_VCPU: return get_vcpu(p, len, st, path, diag);
    case SBX_SNAP_SEC_MSRS: return get_msrs(p, len, st, path, diag);
    case SBX_SNAP_SEC_CPUID: return get_cpuid(p, len, st, path, diag);
    case SBX_SNAP_SEC_XSAVE: return get_xsave(p, len, st, path, diag);
    }
    return sbx_fail(diag, SBX_E_SNAP_CORRUPT, "%s: section type %u is not vCPU state", path, type);
}

uint64_t sbx_vcpu_xcr0(const struct sbx_vcpu_state *st)
{
    for (uint32_t i = 0; i < st->xcrs.nr_xcrs && i < KVM_MAX_XCRS; i++)
        if (st->xcrs.xcrs[i].xcr == 0)
            return st->xcrs.xcrs[i].value;
    return 1;
}
