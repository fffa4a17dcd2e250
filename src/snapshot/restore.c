/* restore.c - a sandbox from a verified snapshot: CPU check, memory, vCPU state. */
#include <string.h>

#include "snapshot.h"
#include "vcpu/vcpu.h"

static const char *feature_word[] = { "CPUID.1:ECX", "CPUID.1:EDX", "CPUID.7:EBX", "CPUID.7:ECX" };

/* The guest saw the snapshot's CPUID; every feature it may have used and
 * every XSAVE component it enabled must exist here, or it would fault after
 * the restore. */
int sbx_snap_judge_cpu(const struct sbx_snap_facts *f, const struct sbx_cpu_facts *cpu,
                       const char *path, struct sbx_diag *diag)
{
    if (memcmp(f->cpu_vendor, cpu->vendor, sizeof cpu->vendor) != 0)
        return sbx_fail(diag, SBX_E_CPU, "%s: the snapshot was taken on a %.12s CPU, this CPU is "
                        "%.12s", path, f->cpu_vendor, cpu->vendor);
    /* Bits the CPU sets from the guest's own control registers, not features:
     * OSXSAVE (CR4.OSXSAVE) and OSPKE (CR4.PKE). */
    static const uint32_t os_bits[4] = { 1u << 27, 0, 0, 1u << 4 };
    for (int i = 0; i < 4; i++) {
        uint32_t missing = f->cpuid_features[i] & ~os_bits[i] & ~cpu->features[i];
        if (missing)
            return sbx_fail(diag, SBX_E_CPU, "%s: this CPU lacks features the snapshot was taken "
                            "with: %s bits 0x%08x (snapshot CPU %.12s, this CPU %.12s)",
                            path, feature_word[i], missing, f->cpu_vendor, cpu->vendor);
    }
    if (f->xcr0 & ~cpu->xcr0_supported)
        return sbx_fail(diag, SBX_E_CPU, "%s: snapshot XCR0 0x%llx has state components this CPU "
                        "lacks (supports 0x%llx)", path, (unsigned long long)f->xcr0,
                        (unsigned long long)cpu->xcr0_supported);
    return 0;
}

int sbx_snap_check_cpu(const struct sbx_snap_meta *m, const char *path, const struct sbx_vm *vm,
                       struct sbx_diag *diag)
{
    struct sbx_cpu_facts cpu;
    int rc = sbx_vm_cpu_facts(vm, &cpu, diag);
    if (rc)
        return rc;
    struct sbx_snap_facts f;
    sbx_snap_facts_of(m, &f);
    return sbx_snap_judge_cpu(&f, &cpu, path, diag);
}

int sbx_snap_apply_header(struct sbx_sandbox *s, const struct sbx_snap_meta *m,
                          struct sbx_diag *diag)
{
    int rc = sbx_sandbox_start_state(s, &m->vcpu, diag);
    if (rc)
        return rc;
    rc = sbx_sandbox_set_functions(s, m->funcs, m->nfuncs, diag);
    if (rc)
        return rc;
    struct sbx_guest_facts facts = { .has_note = m->h.guest_has_note != 0,
                                     .version = sbx_snap_version(&m->h.guest),
                                     .hash = m->h.guest_elf_xxh3 };
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
    int rc = sbx_snapshot_check_compat(snap, snap->policy, snap->require_note, diag);
    if (rc)
        return rc;
    struct sbx_sandbox *s = NULL;
    rc = sbx_sandbox_new(cfg, snap->hdr->mem_size, &s, diag);
    if (rc)
        return rc;
    sbx_sandbox_set_name(s, snap->path);
    rc = sbx_snap_check_cpu(snap->meta, snap->path, &s->vm, diag);
    for (uint32_t i = 0; i < snap->hdr->nchunks && !rc; i++)
        rc = sbx_snap_decode_chunk(snap, i, s->vm.mem + snap->index[i].gpa, diag);
    if (rc || (rc = sbx_snap_apply_header(s, snap->meta, diag))) {
        sbx_sandbox_destroy(s);
        return rc;
    }
    *out = s;
    return 0;
}
