/* guest.c - the guest side of the snapbox ABI: registration, dispatch, hypercalls. */
#include <stdarg.h>

#include "sbx_guest.h"

static struct sbx_abi_func functab[SBX_MAX_FUNCS];
static unsigned nfuncs;

void sbx_hypercall(uint8_t op)
{
    __asm__ volatile("outb %0, %1" : : "a"(op), "i"(SBX_PORT_HYPERCALL) : "memory");
}

void sbx_log(enum sbx_abi_log_level level, const char *msg)
{
    SBX_XCHG->hc_a[0] = (uint64_t)level;
    SBX_XCHG->hc_a[1] = (uint64_t)(uintptr_t)msg;
    SBX_XCHG->hc_a[2] = strlen(msg);
    sbx_hypercall(SBX_HC_LOG);
}

_Noreturn void sbx_abort(int32_t code, const char *msg)
{
    SBX_XCHG->hc_a[0] = (uint64_t)(int64_t)code;
    SBX_XCHG->hc_a[1] = (uint64_t)(uintptr_t)msg;
    SBX_XCHG->hc_a[2] = strlen(msg);
    for (;;) {
        /* The host never resumes an aborted guest; halt if it does. */
        sbx_hypercall(SBX_HC_ABORT);
        __asm__ volatile("hlt");
    }
}

void sbx_register(const char *name, enum sbx_abi_type ret, sbx_guest_fn fn, unsigned nargs, ...)
{
    if (nfuncs >= SBX_MAX_FUNCS)
        sbx_abort(-1, "sbx_register: too many functions");
    if (nargs > SBX_MAX_ARGS)
        sbx_abort(-1, "sbx_register: too many arguments");
    struct sbx_abi_func *f = &functab[nfuncs];
    f->name_gpa = (uint64_t)(uintptr_t)name;
    f->name_len = (uint32_t)strlen(name);
    f->ret_type = (uint8_t)ret;
    f->nargs = (uint8_t)nargs;
    f->entry = (uint64_t)(uintptr_t)fn;
    va_list ap;
    va_start(ap, nargs);
    for (unsigned i = 0; i < nargs; i++)
        f->arg_types[i] = (uint8_t)va_arg(ap, int);
    va_end(ap);
    nfuncs++;
}

int sbx_host_call(const char *name, struct sbx_abi_value *ret, unsigned nargs,
                  const struct sbx_abi_value *args)
{
    volatile struct sbx_xchg *x = SBX_XCHG;
    if (nargs > SBX_MAX_ARGS)
        return -1;
    x->hc_a[0] = (uint64_t)(uintptr_t)name;
    x->hc_a[1] = strlen(name);
    x->nargs = nargs;
    for (unsigned i = 0; i < nargs; i++)
        x->args[i] = args[i];
    sbx_hypercall(SBX_HC_HOST_CALL);
    if (x->host_status == 0 && ret)
        *ret = x->ret;
    return x->host_status;
}

static void dispatch(void)
{
    volatile struct sbx_xchg *x = SBX_XCHG;
    uint32_t idx = x->call_index;
    uint32_t nargs = x->nargs;
    if (idx >= nfuncs || nargs != functab[idx].nargs)
        sbx_abort(-2, "dispatch: bad call request");
    /* Copy the arguments: a host call made by the function reuses xchg.args. */
    struct sbx_abi_value args[SBX_MAX_ARGS];
    for (uint32_t i = 0; i < nargs; i++)
        args[i] = x->args[i];
    struct sbx_abi_value ret = { .type = functab[idx].ret_type };
    ((sbx_guest_fn)(uintptr_t)functab[idx].entry)(args, &ret);
    x->ret = ret;
}

#define MAX_RESTORE_HOOKS 16
static void (*restore_hooks[MAX_RESTORE_HOOKS])(void);
static unsigned nrestore_hooks;

void sbx_on_restore(void (*fn)(void))
{
    if (nrestore_hooks == MAX_RESTORE_HOOKS)
        sbx_abort(-1, "sbx_on_restore: too many hooks");
    restore_hooks[nrestore_hooks++] = fn;
}

/* The host sets xchg.restored in the first call request after a restore or
 * reset; the hooks run then, before the call. */
static void run_restore_hooks(void)
{
    if (!SBX_XCHG->restored)
        return;
    for (unsigned i = 0; i < nrestore_hooks; i++)
        restore_hooks[i]();
}

/* Weak: the C library glue (libc.c) flushes stdio after each call. */
__attribute__((weak)) void sbx_guest_call_done(void) {}
__attribute__((weak)) void sbx_guest_call_start(void) {}

/* Called with the stack set up by the host (freestanding), or by the C
 * library after its start-up (libc.c). */
_Noreturn void sbx_guest_main(void)
{
    sbx_guest_init();
    SBX_XCHG->hc_a[0] = (uint64_t)(uintptr_t)functab;
    SBX_XCHG->hc_a[1] = nfuncs;
    sbx_hypercall(SBX_HC_READY);
    for (;;) {
        run_restore_hooks();
        sbx_guest_call_start();
        dispatch();
        sbx_guest_call_done();
        sbx_hypercall(SBX_HC_RETURN);
    }
}

