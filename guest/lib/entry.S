/* entry.S - guest entry point. The host starts the vCPU here in 64-bit mode
 * with rsp = SBX_LAYOUT_STACK_TOP. */
    .section .text.entry, "ax"
    .globl _start
    .type _start, @function
_start:
    xor %ebp, %ebp
    and $-16, %rsp
    call sbx_guest_main
1:  hlt
    jmp 1b
    .size _start, . - _start
    .section .note.GNU-stack, "", @progbits
