/* cpuid.c - the CPUID a guest sees: the host's, as KVM supports it, with
 * everything removed that would let a guest reach state snapbox does not put
 * back. docs/security.md lists the edits:
 * - KVM's paravirtual leaves 0x40000000-0x4fffffff (kvmclock, steal time,
 *   async page faults, PV EOI, ...), enforced with KVM_CAP_ENFORCE_PV_FEATURE_CPUID
 *   so a guest that writes their MSRs anyway gets #GP;
 * - the performance-monitoring unit (leaf 0xa, PDCM, AMD's core/NB/LLC
 *   counter extensions, leaf 0x80000022);
 * - the local APIC, x2APIC and TSC deadline timer (there is no in-kernel APIC);
 * - MONITOR/MWAIT. */
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vcpu.h"

#define BIT(n) (1u << (n))
#define L1_ECX_MONITOR BIT(3)
#define L1_ECX_PDCM BIT(15)
#define L1_ECX_X2APIC BIT(21)
#define L1_ECX_TSC_DEADLINE BIT(24)
#define L1_EDX_APIC BIT(9)
#define XL1_ECX_PERF_CORE BIT(23)
#define XL1_ECX_PERF_NB BIT(24)
#define XL1_ECX_PERF_LLC BIT(28)

static bool leaf_dropped(uint32_t fn)
{
    return (fn >= 0x40000000u && fn <= 0x4fffffffu) || fn == 0xa || fn == 0x80000022u;
}

static void edit_leaf(struct kvm_cpuid_entry2 *e)
{
    if (e->function == 1) {
        e->ecx &= ~(L1_ECX_MONITOR | L1_ECX_PDCM | L1_ECX_X2APIC | L1_ECX_TSC_DEADLINE);
        e->edx &= ~L1_EDX_APIC;
    } else if (e->function == 0x80000001u) {
        e->ecx &= ~(XL1_ECX_PERF_CORE | XL1_ECX_PERF_NB | XL1_ECX_PERF_LLC);
    }
}

int sbx_cpuid_supported(int kvm_fd, struct kvm_cpuid2 **out, struct sbx_diag *diag)
{
    size_t size = sizeof(struct kvm_cpuid2) + SBX_MAX_CPUID_KVM * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *c = calloc(1, size);
    if (!c)
        return sbx_fail(diag, SBX_E_NOMEM, "KVM: out of memory for CPUID");
    c->nent = SBX_MAX_CPUID_KVM;
    if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
        free(c);
        return sbx_vm_ioctl_fail(diag, "KVM_GET_SUPPORTED_CPUID");
    }
    *out = c;
    return 0;
}

int sbx_cpuid_for_guest(int kvm_fd, struct sbx_vcpu_state *st, struct sbx_diag *diag)
{
    struct kvm_cpuid2 *c = NULL;
    int rc = sbx_cpuid_supported(kvm_fd, &c, diag);
    if (rc)
        return rc;
    st->ncpuid = 0;
    for (uint32_t i = 0; i < c->nent; i++) {
        if (leaf_dropped(c->entries[i].function))
            continue;
        if (st->ncpuid == SBX_MAX_CPUID) {
            rc = sbx_fail(diag, SBX_E_KVM, "KVM offers more than %u CPUID entries", SBX_MAX_CPUID);
            break;
        }
        st->cpuid[st->ncpuid] = c->entries[i];
        edit_leaf(&st->cpuid[st->ncpuid++]);
    }
    free(c);
    return rc;
}

int sbx_cpuid_set(const struct sbx_vm *vm, const struct sbx_vcpu_state *st, struct sbx_diag *diag)
{
    union sbx_kvm_cpuid c;
    memset(&c, 0, sizeof c);
    c.h.nent = st->ncpuid;
    memcpy(c.h.entries, st->cpuid, st->ncpuid * sizeof *st->cpuid);
    if (ioctl(vm->vcpu_fd, KVM_SET_CPUID2, &c) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_SET_CPUID2");
    return 0;
}
