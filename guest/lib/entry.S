/* entry.S - guest entry point. The host starts the vCPU here in 64-bit mode
 * with rsp = SBX_LAYOUT_STACK_TOP; sbx_start is start.c's (freestanding
 * guests) or libc.c's (guests on the C library). */
    .section .text.entry, "ax"
    .globl _start
    .type _start, @function
_start:
    xor %ebp, %ebp
    and $-16, %rsp
    call sbx_start
1:  hlt
    jmp 1b
    .size _start, . - _start
    .section .note.GNU-stack, "", @progbits
