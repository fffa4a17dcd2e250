/* kvm.c - open /dev/kvm, create the VM, its memory slot and its one vCPU. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vcpu.h"


int sbx_vm_ioctl_fail(struct sbx_diag *diag, const char *what)
{
    return sbx_fail(diag, SBX_E_KVM, "KVM: %s failed: %s", what, strerror(errno));
}

static int open_kvm(struct sbx_vm *vm, struct sbx_diag *diag)
{
    vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (vm->kvm_fd < 0)
        return sbx_fail(diag, SBX_E_KVM,
                        "/dev/kvm: cannot open: %s (this machine offers no KVM; "
                        "tests/kvm-vm.sh runs programs in a VM that does)",
                        strerror(errno));
    int api = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION)
        return sbx_fail(diag, SBX_E_KVM, "/dev/kvm: API version %d, snapbox needs %d", api,
                        KVM_API_VERSION);
    static const struct { int cap; const char *name; } caps[] = {
        { KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
        { KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
        { KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
        { KVM_CAP_XSAVE, "KVM_CAP_XSAVE" },
        { KVM_CAP_XCRS, "KVM_CAP_XCRS" },
    };
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
        if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, caps[i].cap) <= 0)
            return sbx_fail(diag, SBX_E_KVM, "/dev/kvm: missing capability %s", caps[i].name);
    return 0;
}

static const struct kvm_cpuid_entry2 *cpuid_leaf(const struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
    for (uint32_t i = 0; i < c->nent; i++)
        if (c->entries[i].function == fn && c->entries[i].index == idx)
            return &c->entries[i];
    return NULL;
}

int sbx_vm_cpu_facts(const struct sbx_vm *vm, struct sbx_cpu_facts *out, struct sbx_diag *diag)
{
    return sbx_kvm_cpu_facts(vm->kvm_fd, out, diag);
}

int sbx_kvm_cpu_facts(int kvm_fd, struct sbx_cpu_facts *out, struct sbx_diag *diag)
{
    struct kvm_cpuid2 *cpuid = NULL;
    int rc = sbx_cpuid_supported(kvm_fd, &cpuid, diag);
    if (rc)
        return rc;
    static const struct kvm_cpuid_entry2 none;
    const struct kvm_cpuid_entry2 *l0 = cpuid_leaf(cpuid, 0, 0), *l1 = cpuid_leaf(cpuid, 1, 0);
    const struct kvm_cpuid_entry2 *l7 = cpuid_leaf(cpuid, 7, 0), *ld = cpuid_leaf(cpuid, 0xd, 0);
    l0 = l0 ? l0 : &none, l1 = l1 ? l1 : &none, l7 = l7 ? l7 : &none, ld = ld ? ld : &none;
    memcpy(out->vendor, &l0->ebx, 4);
    memcpy(out->vendor + 4, &l0->edx, 4);
    memcpy(out->vendor + 8, &l0->ecx, 4);
    out->features[0] = l1->ecx;
    out->features[1] = l1->edx;
    out->features[2] = l7->ebx;
    out->features[3] = l7->ecx;
    out->xcr0_supported = ld->eax | (uint64_t)ld->edx << 32;
    free(cpuid);
    return 0;
}

/* The guest CPUID of cpuid.c; with PV features enforced, a guest cannot turn
 * on KVM's paravirtual MSRs that the CPUID hides. */
static int set_guest_cpuid(struct sbx_vm *vm, struct sbx_diag *diag)
{
    if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_ENFORCE_PV_FEATURE_CPUID) > 0) {
        struct kvm_enable_cap cap = { .cap = KVM_CAP_ENFORCE_PV_FEATURE_CPUID, .args = { 1 } };
        if (ioctl(vm->vcpu_fd, KVM_ENABLE_CAP, &cap) < 0)
            return sbx_vm_ioctl_fail(diag, "KVM_ENABLE_CAP(ENFORCE_PV_FEATURE_CPUID)");
    }
    struct sbx_vcpu_state *st = malloc(sizeof *st);
    if (!st)
        return sbx_fail(diag, SBX_E_NOMEM, "out of memory for the guest CPUID");
    int rc = sbx_cpuid_for_guest(vm->kvm_fd, st, diag);
    if (rc == 0)
        rc = sbx_cpuid_set(vm, st, diag);
    free(st);
    return rc;
}

static int create_vcpu(struct sbx_vm *vm, struct sbx_diag *diag)
{
    vm->vcpu_fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0);
    if (vm->vcpu_fd < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_CREATE_VCPU");
    int size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (size < (int)sizeof(struct kvm_run))
        return sbx_vm_ioctl_fail(diag, "KVM_GET_VCPU_MMAP_SIZE");
    void *run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu_fd, 0);
    if (run == MAP_FAILED)
        return sbx_vm_ioctl_fail(diag, "mmap of the vCPU run area");
    vm->run = run;
    vm->run_size = (size_t)size;
    /* The XSAVE area: 4096 bytes, or more with KVM_CAP_XSAVE2 (AMX and other
     * large components). Asked once here, not on every save and load. */
    int xs = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
    vm->xsave_size = xs > 4096 && xs <= (int)SBX_XSAVE_MAX ? (uint32_t)xs : 4096u;
    int rc = set_guest_cpuid(vm, diag);
    return rc ? rc : sbx_msr_list(vm, NULL, NULL, diag);
}

/* Guest memory: anonymous, or a private copy-on-write mapping of memfd. Never
 * transparent huge pages: one byte a guest touches would cost 2 MiB resident,
 * and a reset giving back 4 KiB pages would split them. */
static int map_memory(struct sbx_vm *vm, uint64_t mem_size, const struct sbx_vm_opts *o,
                      struct sbx_diag *diag)
{
    int flags = MAP_PRIVATE | MAP_NORESERVE | (o->memfd >= 0 ? 0 : MAP_ANONYMOUS);
    uint8_t *mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, flags, o->memfd, 0);
    if (mem != MAP_FAILED)
        madvise(mem, mem_size, MADV_NOHUGEPAGE); /* advice: fine where THP is absent */
    if (mem == MAP_FAILED)
        return sbx_fail(diag, SBX_E_NOMEM, "cannot map %llu bytes of guest memory: %s",
                        (unsigned long long)mem_size, strerror(errno));
    vm->mem = mem;
    vm->mem_size = mem_size;
    sbx_mem_private(mem, mem_size);
    return 0;
}

static int set_memory_slot(struct sbx_vm *vm, bool dirty_log, struct sbx_diag *diag)
{
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = vm->mem_size,
        .userspace_addr = (uint64_t)(uintptr_t)vm->mem,
        .flags = dirty_log ? KVM_MEM_LOG_DIRTY_PAGES : 0,
    };
    if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_SET_USER_MEMORY_REGION");
    if (dirty_log) {
        vm->dirty = calloc(sbx_vm_dirty_words(vm), sizeof *vm->dirty);
        vm->host_dirty = calloc(sbx_vm_dirty_words(vm), sizeof *vm->host_dirty);
        if (!vm->dirty || !vm->host_dirty)
            return sbx_fail(diag, SBX_E_NOMEM, "out of memory for the dirty-page bitmap");
    }
    return 0;
}

int sbx_vm_create(struct sbx_vm *vm, uint64_t mem_size, const struct sbx_vm_opts *o,
                  struct sbx_diag *diag)
{
    *vm = SBX_VM_EMPTY;
    int rc = open_kvm(vm, diag);
    if (rc)
        goto err;
    vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
    if (vm->vm_fd < 0) {
        rc = sbx_vm_ioctl_fail(diag, "KVM_CREATE_VM");
        goto err;
    }
    rc = map_memory(vm, mem_size, o, diag);
    if (rc || (rc = set_memory_slot(vm, o->dirty_log, diag)) || (rc = create_vcpu(vm, diag)))
        goto err;
    return 0;
err:
    sbx_vm_destroy(vm);
    return rc;
}

int sbx_vm_map_cow(struct sbx_vm *vm, int memfd, struct sbx_diag *diag)
{
    /* KVM's MMU notifier drops the old translations when the mapping is replaced. */
    void *p = mmap(vm->mem, vm->mem_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, memfd, 0);
    if (p == MAP_FAILED)
        return sbx_fail(diag, SBX_E_NOMEM, "cannot map the template copy-on-write: %s",
                        strerror(errno));
    sbx_mem_private(vm->mem, vm->mem_size);
    return 0;
}

int sbx_vm_get_dirty(struct sbx_vm *vm, struct sbx_diag *diag)
{
    struct kvm_dirty_log log = { .slot = 0, .dirty_bitmap = vm->dirty };
    if (!vm->dirty)
        return sbx_fail(diag, SBX_E_INVAL, "this sandbox's memory is not dirty-logged");
    if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_GET_DIRTY_LOG");
    for (size_t i = 0; i < sbx_vm_dirty_words(vm); i++) {
        vm->dirty[i] |= vm->host_dirty[i];
        vm->host_dirty[i] = 0;
    }
    return 0;
}

void sbx_vm_destroy(struct sbx_vm *vm)
{
    if (vm->run)
        munmap(vm->run, vm->run_size);
    if (vm->mem)
        munmap(vm->mem, vm->mem_size);
    free(vm->dirty);
    free(vm->host_dirty);
    if (vm->vcpu_fd >= 0)
        close(vm->vcpu_fd);
    if (vm->vm_fd >= 0)
        close(vm->vm_fd);
    if (vm->kvm_fd >= 0)
        close(vm->kvm_fd);
    *vm = SBX_VM_EMPTY;
}
