/* syscall.S - where SYSCALL lands (LSTAR) in a guest linked with the C
 * library. The guest runs at ring 0, so SYSCALL keeps the stack and returns
 * with a jump, not SYSRET. The C side (libc.c) is built with general
 * registers only, so vector registers pass through untouched, as the Linux
 * system call ABI promises. */
    .text
    .globl sbx_syscall_entry
    .type sbx_syscall_entry, @function
sbx_syscall_entry:
    lea -128(%rsp), %rsp        /* step over the caller's red zone */
    push %rcx                   /* return address */
    push %r11                   /* RFLAGS */
    push %rbp
    mov %rsp, %rbp
    and $-16, %rsp
    /* struct sbx_syscall_frame { nr, a0..a5 } */
    push %r9
    push %r8
    push %r10
    push %rdx
    push %rsi
    push %rdi
    push %rax
    mov %rsp, %rdi
    sub $8, %rsp                /* 7 pushes: realign to 16 for the call */
    call sbx_syscall
    add $16, %rsp               /* the padding and nr: rax holds the result */
    pop %rdi
    pop %rsi
    pop %rdx
    pop %r10
    pop %r8
    pop %r9
    mov %rbp, %rsp
    pop %rbp
    pop %r11
    pop %rcx
    push %r11                   /* below the red zone still */
    popfq
    lea 128(%rsp), %rsp         /* lea: the flags just restored stay */
    jmp *%rcx
    .size sbx_syscall_entry, . - sbx_syscall_entry
    .section .note.GNU-stack, "", @progbits
