/* plain.S - a guest that does not use the guest library and carries no
 * version note: it speaks the ABI by hand and offers one function,
 * "answer() -> i64", which returns 42. */
#include "sbx_abi.h"

    .section .text.entry, "ax"
    .globl _start
_start:
    movq $functab, SBX_LAYOUT_XCHG + SBX_XCHG_OFF_HC_A0
    movq $1, SBX_LAYOUT_XCHG + SBX_XCHG_OFF_HC_A1
    mov $SBX_HC_READY, %al
    out %al, $SBX_PORT_HYPERCALL
serve:
    movl $SBX_ABI_T_I64_ASM, SBX_LAYOUT_XCHG + SBX_XCHG_OFF_RET
    movq $42, SBX_LAYOUT_XCHG + SBX_XCHG_OFF_RET + 8
    mov $SBX_HC_RETURN, %al
    out %al, $SBX_PORT_HYPERCALL
    jmp serve

    .section .rodata
name:
    .ascii "answer"
    .balign 8
functab:                       /* one struct sbx_abi_func */
    .quad name                 /* name_gpa */
    .long 6                    /* name_len */
    .byte SBX_ABI_T_I64_ASM, 0     /* ret_type, nargs */
    .fill 10, 1, 0             /* arg_types, reserved */
    .quad serve                /* entry (unused by the host) */
    .section .note.GNU-stack, "", @progbits
