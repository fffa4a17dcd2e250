/* msr.c - which MSRs make up a guest's state: every MSR in KVM's index list
 * that this host's KVM both reads and writes back for a vCPU with the guest
 * CPUID (cpuid.c). MSRs a guest can write but KVM does not save cannot be
 * put back by anyone; MSRs whose features the CPUID hides fail the probe and
 * #GP in the guest. Probed once per process on the first vCPU, since it
 * depends only on the host's kernel and CPU. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vcpu.h"

#define INDEX_LIST_MAX 1024u
#define HYPERV_MSR_FIRST 0x40000000u
#define HYPERV_MSR_LAST 0x400001ffu

static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static bool probed;
static uint32_t state_msrs[SBX_MAX_MSRS];
static uint32_t nstate_msrs;

static bool msr_round_trips(int vcpu_fd, uint32_t index)
{
    union sbx_kvm_msrs m;
    memset(&m, 0, sizeof m);
    m.h.nmsrs = 1;
    m.h.entries[0].index = index;
    if (ioctl(vcpu_fd, KVM_GET_MSRS, &m) != 1)
        return false;
    return ioctl(vcpu_fd, KVM_SET_MSRS, &m) == 1;
}

/* Hyper-V's synthetic MSRs: KVM refuses them to a guest whose CPUID lacks
 * the Hyper-V leaves (cpuid.c drops them), and some are clocks that move on
 * their own, so they are no state of ours. */
static bool hyperv_msr(uint32_t index)
{
    return index >= HYPERV_MSR_FIRST && index <= HYPERV_MSR_LAST;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int probe(const struct sbx_vm *vm, struct sbx_diag *diag)
{
    union {
        struct kvm_msr_list h;
        uint8_t room[sizeof(struct kvm_msr_list) + INDEX_LIST_MAX * sizeof(uint32_t)];
    } list;
    memset(&list, 0, sizeof list); /* tools such as valgrind cannot see KVM fill it */
    list.h.nmsrs = INDEX_LIST_MAX;
    if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &list) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_GET_MSR_INDEX_LIST");
    uint32_t n = 0;
    for (uint32_t i = 0; i < list.h.nmsrs; i++) {
        if (hyperv_msr(list.h.indices[i]) || !msr_round_trips(vm->vcpu_fd, list.h.indices[i]))
            continue;
        if (n == SBX_MAX_MSRS)
            return sbx_fail(diag, SBX_E_KVM, "KVM saves more than %u guest MSRs; snapbox "
                            "cannot keep this host's complete vCPU state", SBX_MAX_MSRS);
        state_msrs[n++] = list.h.indices[i];
    }
    qsort(state_msrs, n, sizeof *state_msrs, cmp_u32);
    nstate_msrs = n;
    return 0;
}

int sbx_msr_list(const struct sbx_vm *vm, const uint32_t **list, uint32_t *n,
                 struct sbx_diag *diag)
{
    int rc = 0;
    pthread_mutex_lock(&probe_lock);
    if (!probed && (rc = probe(vm, diag)) == 0)
        probed = true;
    pthread_mutex_unlock(&probe_lock);
    if (rc == 0 && list) {
        *list = state_msrs;
        *n = nstate_msrs;
    }
    return rc;
}
