/* restore.c - a sandbox from a verified snapshot: CPU check, memory, vCPU state. */
#include <string.h>

#include "snapshot.h"
#include "vcpu/vcpu.h"

static const char *feature_word[] = { "CPUID.1:ECX", "CPUID.1:EDX", "CPUID.7:EBX", "CPUID.7:ECX" };

int sbx_snap_check_cpu(const struct sbx_snap_header *h, const char *path, const struct sbx_vm *vm,
                       struct sbx_diag *diag)
{
    struct sbx_cpu_facts cpu;
    int rc = sbx_vm_cpu_facts(vm, &cpu, diag);
    if (rc)
        return rc;
    for (int i = 0; i < 4; i++) {
        uint32_t missing = h->cpuid_features[i] & ~cpu.features[i];
        if (missing)
            return sbx_fail(diag, SBX_E_CPU, "%s: this CPU lacks features the snapshot was taken "
                            "with: %s bits 0x%08x (snapshot CPU %.12s, this CPU %.12s)",
                            path, feature_word[i], missing, h->cpu_vendor, cpu.vendor);
    }
    if (h->xcr0 & ~cpu.xcr0_supported)
        return sbx_fail(diag, SBX_E_CPU, "%s: snapshot XCR0 0x%llx has state components this CPU "
                        "lacks (supports 0x%llx)", path, (unsigned long long)h->xcr0,
                        (unsigned long long)cpu.xcr0_supported);
    return 0;
}

void sbx_snap_vcpu_state(const struct sbx_snap_header *h, struct sbx_vcpu_state *st)
{
    *st = (struct sbx_vcpu_state){ .regs = h->regs, .sregs = h->sregs, .xcrs = h->xcrs };
    memcpy(st->xsave, h->xsave, sizeof h->xsave);
    st->xsave_size = sizeof h->xsave;
}

int sbx_snap_apply_header(struct sbx_sandbox *s, const struct sbx_snap_header *h,
                          struct sbx_diag *diag)
{
    struct sbx_vcpu_state st;
    sbx_snap_vcpu_state(h, &st);
    int rc = sbx_sandbox_start_state(s, &st, diag);
    if (rc)
        return rc;
    struct sbx_func funcs[SBX_MAX_FUNCS];
    sbx_snap_funcs_decode(h, funcs);
    rc = sbx_sandbox_set_functions(s, funcs, h->nfuncs, diag);
    if (rc)
        return rc;
    struct sbx_guest_facts facts = { .has_note = h->guest_has_note != 0,
                                     .version = sbx_snap_version(&h->guest),
                                     .hash = h->guest_elf_xxh3 };
    sbx_sandbox_set_guest_facts(s, &facts);
    return 0;
}

int sbx_sandbox_restore(const struct sbx_snapshot *snap, const struct sbx_config *cfg,
                        struct sbx_sandbox **out, struct sbx_diag *diag)
{
    if (!snap || !out)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_sandbox_restore: snapshot and out are required");
    if (!snap->complete)
        return sbx_fail(diag, SBX_E_INVAL, "%s: only the header was read; open it with "
                        "sbx_snapshot_open to restore", snap->path);
    struct sbx_sandbox *s = NULL;
    int rc = sbx_sandbox_new(cfg, snap->hdr->mem_size, &s, diag);
    if (rc)
        return rc;
    rc = sbx_snap_check_cpu(snap->hdr, snap->path, &s->vm, diag);
    for (uint32_t i = 0; i < snap->hdr->nchunks && !rc; i++)
        rc = sbx_snap_decode_chunk(snap, i, s->vm.mem + snap->index[i].gpa, diag);
    if (rc || (rc = sbx_snap_apply_header(s, snap->hdr, diag))) {
        sbx_sandbox_destroy(s);
        return rc;
    }
    *out = s;
    return 0;
}
