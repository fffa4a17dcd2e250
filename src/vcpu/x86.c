/* x86.c - page tables, GDT, TSS, IDT and exception stubs; initial vCPU state. */
#include <elf.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vcpu.h"

#define PTE_P (1ull << 0)
#define PTE_RW (1ull << 1)
#define PTE_PS (1ull << 7)
#define PTE_NX (1ull << 63)
#define HUGE_PAGE (2ull << 20)
#define NVECTORS SBX_FAULT_VECTORS
#define STUB_SIZE SBX_FAULT_STUB_SIZE

#define CR0_PE (1ull << 0)
#define CR0_MP (1ull << 1)
#define CR0_ET (1ull << 4)
#define CR0_NE (1ull << 5)
#define CR0_WP (1ull << 16)
#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)
#define CR4_OSFXSR (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define CR4_OSXSAVE (1ull << 18)
#define EFER_SCE (1ull << 0)
#define CPUID1_ECX_XSAVE (1u << 26)
#define XCR0_X87_SSE 0x3ull
#define XCR0_WANTED 0xe7ull /* x87, SSE, AVX, AVX-512 opmask, ZMM_Hi256, Hi16_ZMM */
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)

#define SEL_CODE 0x08
#define SEL_DATA 0x10
#define SEL_TSS 0x18
#define TSS_SIZE 104u
#define TSS_IST1 36u
#define TSS_IOMAP 102u

static void put64(uint8_t *mem, uint64_t gpa, uint64_t v) { memcpy(mem + gpa, &v, sizeof v); }

/* The flags of the image's segments that cover page (0: none does). */
static uint32_t segment_flags(const struct sbx_guest *g, uint64_t page)
{
    uint32_t flags = 0;
    for (size_t i = 0; i < g->nseg; i++) {
        const struct sbx_segment *s = &g->seg[i];
        uint64_t first = s->vaddr & ~(SBX_PAGE_SIZE - 1);
        if (page >= first && page < s->vaddr + s->memsz)
            flags |= s->flags;
    }
    return flags;
}

/* PTE for a 4 KiB page: absent, system (RW, NX), image (its segment's
 * protections; a gap between segments is absent) or, past the image, page
 * tables and heap (RW, NX). */
static uint64_t pte(const struct sbx_guest *g, const struct sbx_layout *l, uint64_t page)
{
    if (page == SBX_LAYOUT_NULL_PAGE || page == SBX_LAYOUT_STACK_GUARD || page == l->stack_guard)
        return 0;
    if (page == SBX_LAYOUT_FAULT_STUBS)
        return page | PTE_P;
    if (page > SBX_LAYOUT_BOOT && page < SBX_LAYOUT_XCHG)
        return 0;
    if (page < SBX_LAYOUT_IMAGE || page >= l->image_end)
        return page < SBX_LAYOUT_IMAGE || page >= SBX_LAYOUT_IMAGE_END
                   ? page | PTE_P | PTE_RW | PTE_NX : 0;
    uint32_t flags = segment_flags(g, page);
    if (!flags)
        return 0;
    return page | PTE_P | ((flags & PF_W) ? PTE_RW : 0) | ((flags & PF_X) ? 0 : PTE_NX);
}

/* 4 KiB pages for the first 2 MiB and for the image past them, 2 MiB pages
 * for the rest of memory (RW, NX). */
static void build_page_tables(struct sbx_vm *vm, const struct sbx_guest *g,
                              const struct sbx_layout *l)
{
    put64(vm->mem, SBX_LAYOUT_PML4, SBX_LAYOUT_PDPT | PTE_P | PTE_RW);
    put64(vm->mem, SBX_LAYOUT_PDPT, SBX_LAYOUT_PD | PTE_P | PTE_RW);
    for (uint64_t i = 0; i < vm->mem_size / HUGE_PAGE; i++) {
        uint64_t pt = i == 0 ? SBX_LAYOUT_PT
                    : i <= l->nextra_pt ? l->extra_pt + (i - 1) * SBX_PAGE_SIZE : 0;
        if (!pt) {
            put64(vm->mem, SBX_LAYOUT_PD + 8 * i, i * HUGE_PAGE | PTE_P | PTE_RW | PTE_PS | PTE_NX);
            continue;
        }
        put64(vm->mem, SBX_LAYOUT_PD + 8 * i, pt | PTE_P | PTE_RW);
        for (uint64_t p = 0; p < HUGE_PAGE / SBX_PAGE_SIZE; p++)
            put64(vm->mem, pt + 8 * p, pte(g, l, i * HUGE_PAGE + p * SBX_PAGE_SIZE));
    }
}

static void build_gdt_tss(struct sbx_vm *vm)
{
    uint8_t *mem = vm->mem;
    put64(mem, SBX_LAYOUT_GDT + SEL_CODE, 0x00af9b000000ffffull); /* 64-bit code, accessed */
    put64(mem, SBX_LAYOUT_GDT + SEL_DATA, 0x00cf93000000ffffull); /* data, accessed */
    uint64_t base = SBX_LAYOUT_TSS, limit = TSS_SIZE - 1;
    uint64_t lo = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x8bull << 40) /* busy TSS */ |
                  (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
    put64(mem, SBX_LAYOUT_GDT + SEL_TSS, lo);
    put64(mem, SBX_LAYOUT_GDT + SEL_TSS + 8, base >> 32);
    put64(mem, SBX_LAYOUT_TSS + TSS_IST1, SBX_LAYOUT_IST_STACK_TOP);
    uint16_t iomap = TSS_SIZE;
    memcpy(mem + SBX_LAYOUT_TSS + TSS_IOMAP, &iomap, sizeof iomap);
}

/* Each exception vector reports itself to the host: mov $v,%al; out %al,$FAULT; hlt; jmp .-1,
 * after push %rax with keep_rax. */
size_t sbx_x86_fault_stub(uint32_t v, bool keep_rax, uint8_t out[SBX_FAULT_STUB_SIZE])
{
    const uint8_t code[] = { 0x50, 0xb0, (uint8_t)v, 0xe6, SBX_PORT_FAULT, 0xf4, 0xeb, 0xfd };
    size_t skip = keep_rax ? 0 : 1;
    memcpy(out, code + skip, sizeof code - skip);
    return sizeof code - skip;
}

static void build_idt(struct sbx_vm *vm)
{
    for (uint32_t v = 0; v < NVECTORS; v++) {
        uint64_t stub = SBX_LAYOUT_FAULT_STUBS + v * STUB_SIZE;
        sbx_x86_fault_stub(v, false, vm->mem + stub);
        uint64_t lo = (stub & 0xffff) | ((uint64_t)SEL_CODE << 16) | (1ull << 32) /* IST1 */ |
                      (0x8eull << 40) /* present interrupt gate */ | (((stub >> 16) & 0xffff) << 48);
        put64(vm->mem, SBX_LAYOUT_IDT + 16 * v, lo);
        put64(vm->mem, SBX_LAYOUT_IDT + 16 * v + 8, stub >> 32);
    }
}

void sbx_x86_build_tables(struct sbx_vm *vm, const struct sbx_guest *g, const struct sbx_layout *l)
{
    build_page_tables(vm, g, l);
    build_gdt_tss(vm);
    build_idt(vm);
}

/* AVX and AVX-512 state for real code, as far as the CPU offers them; not
 * AMX, whose large state a host must first ask the kernel for. */
static int enable_xsave_components(struct sbx_vm *vm, const struct sbx_cpu_facts *cpu,
                                   struct sbx_diag *diag)
{
    struct kvm_xcrs x = { .nr_xcrs = 1 };
    x.xcrs[0].xcr = 0;
    x.xcrs[0].value = (cpu->xcr0_supported & XCR0_WANTED) | XCR0_X87_SSE;
    if (ioctl(vm->vcpu_fd, KVM_SET_XCRS, &x) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_SET_XCRS");
    return 0;
}

int sbx_x86_set_initial_state(struct sbx_vm *vm, uint64_t entry, uint64_t stack_top,
                              struct sbx_diag *diag)
{
    struct kvm_sregs s;
    if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &s) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_GET_SREGS");
    struct kvm_segment code = { .base = 0, .limit = 0xffffffff, .selector = SEL_CODE, .type = 11,
                                .present = 1, .s = 1, .l = 1, .g = 1 };
    struct kvm_segment data = { .base = 0, .limit = 0xffffffff, .selector = SEL_DATA, .type = 3,
                                .present = 1, .db = 1, .s = 1, .g = 1 };
    struct kvm_segment tss = { .base = SBX_LAYOUT_TSS, .limit = TSS_SIZE - 1, .selector = SEL_TSS,
                               .type = 11, .present = 1 };
    s.cs = code;
    s.ds = s.es = s.fs = s.gs = s.ss = data;
    s.tr = tss;
    s.gdt.base = SBX_LAYOUT_GDT;
    s.gdt.limit = SEL_TSS + 16 - 1;
    s.idt.base = SBX_LAYOUT_IDT;
    s.idt.limit = NVECTORS * 16 - 1;
    s.cr3 = SBX_LAYOUT_PML4;
    s.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
    struct sbx_cpu_facts cpu;
    int rc = sbx_vm_cpu_facts(vm, &cpu, diag);
    if (rc)
        return rc;
    if (cpu.features[0] & CPUID1_ECX_XSAVE)
        s.cr4 |= CR4_OSXSAVE;
    s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
    s.efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE; /* SCE: the guest library serves SYSCALL */
    if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &s) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_SET_SREGS");
    if ((s.cr4 & CR4_OSXSAVE) && (rc = enable_xsave_components(vm, &cpu, diag)))
        return rc;
    struct kvm_regs regs = { .rip = entry, .rsp = stack_top, .rflags = 2 };
    if (ioctl(vm->vcpu_fd, KVM_SET_REGS, &regs) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_SET_REGS");
    return 0;
}
