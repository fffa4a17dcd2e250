/* debug.c - KVM's guest debugging, for the gdb stub (src/debug/gdbstub.c):
 * software breakpoints (int3) and single steps exit to the host with
 * KVM_EXIT_DEBUG, hardware breakpoints go into the debug registers that KVM
 * loads for the guest while debugging. None of it is guest state: a
 * snapshot or a reset never carries it (state.c saves the guest's own). */
#include <string.h>
#include <sys/ioctl.h>

#include "debug/debug.h"

#define DR7_LOCAL_ENABLE(i) (1ull << (2 * (i)))
#define DR7_RW_SHIFT(i) (16 + 4 * (i))
#define DR7_LEN_SHIFT(i) (18 + 4 * (i))
#define DR7_GE (1ull << 9) /* exact breakpoint matching, as gdb's stubs set it */

/* DR7's LEN field: 00 one byte, 01 two, 11 four, 10 eight. */
static uint64_t dr7_len(unsigned len)
{
    return len == 2 ? 1 : len == 4 ? 3 : len == 8 ? 2 : 0;
}

int sbx_vcpu_guest_debug(struct sbx_vm *vm, bool enable, bool step, const struct sbx_hw_bp *hw,
                         struct sbx_diag *diag)
{
    struct kvm_guest_debug dbg;
    memset(&dbg, 0, sizeof dbg);
    if (enable) {
        dbg.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_SW_BP;
        if (step)
            dbg.control |= KVM_GUESTDBG_SINGLESTEP;
        uint64_t dr7 = 0;
        for (unsigned i = 0; hw && i < SBX_HW_BREAKPOINTS; i++) {
            if (!hw[i].used)
                continue;
            dbg.arch.debugreg[i] = hw[i].addr;
            dr7 |= DR7_LOCAL_ENABLE(i) | ((uint64_t)hw[i].type << DR7_RW_SHIFT(i)) |
                   (dr7_len(hw[i].len) << DR7_LEN_SHIFT(i));
        }
        if (dr7) {
            dbg.control |= KVM_GUESTDBG_USE_HW_BP;
            dbg.arch.debugreg[7] = dr7 | DR7_GE;
        }
    }
    if (ioctl(vm->vcpu_fd, KVM_SET_GUEST_DEBUG, &dbg) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_SET_GUEST_DEBUG");
    return 0;
}
