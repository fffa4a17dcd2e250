/* fuzz_hypercall.c - the hypercall decoder on a hostile guest's memory: the
 * input is the exchange area (and what follows it); byte 0 is the operation,
 * byte 1 what the host waits for. Every handler, the function-table reader
 * and the value decoder for every type run on it, with no KVM: the decoder
 * only reads guest memory, which here is a plain buffer. */
#include <stdlib.h>
#include <string.h>

#include "vcpu/vcpu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MEM (1u << 20) /* the layout's low megabyte: tables, exchange area, stack */

static int host_echo(void *ctx, const struct sbx_value *args, size_t nargs, struct sbx_value *ret)
{
    (void)ctx, (void)nargs;
    *ret = args[0];
    return 0;
}

static int host_add(void *ctx, const struct sbx_value *args, size_t nargs, struct sbx_value *ret)
{
    (void)ctx, (void)nargs;
    ret->u.i64 = (int64_t)((uint64_t)args[0].u.i64 + (uint64_t)args[1].u.i64);
    return args[0].u.i64 < 0 ? -1 : 0;
}

static void log_cb(void *ctx, enum sbx_log_level level, const char *msg)
{
    (void)ctx;
    if ((unsigned)level > SBX_LOG_DEBUG || strlen(msg) > SBX_MAX_LOG_MSG)
        abort();
}

static struct sbx_sandbox *fake_sandbox(void)
{
    static const enum sbx_type echo_args[] = { SBX_T_STR }, add_args[] = { SBX_T_I64, SBX_T_I64 };
    struct sbx_host_fns *fns = NULL;
    struct sbx_sandbox *s = NULL;
    struct sbx_diag d = { 0 };
    if (sbx_host_fns_new(&fns, &d) ||
        sbx_host_fns_add(fns, "host_echo", SBX_T_STR, 1, echo_args, host_echo, NULL, &d) ||
        sbx_host_fns_add(fns, "host_add", SBX_T_I64, 2, add_args, host_add, NULL, &d))
        abort();
    SBX_OPTS(sbx_config, cfg, .log = log_cb, .host_fns = fns, .max_log_per_call = 4);
    if (sbx_sandbox_alloc(&cfg, 0, &s, &d))
        abort();
    sbx_host_fns_free(fns); /* the sandbox holds it */
    /* one allocation of exactly FUZZ_MEM bytes: ASan sees any access past it */
    s->vm.mem = malloc(FUZZ_MEM);
    s->vm.mem_size = FUZZ_MEM;
    if (!s->vm.mem)
        abort();
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sbx_sandbox *s;
    if (!s)
        s = fake_sandbox();
    if (size < 2)
        return 0;
    memset(s->vm.mem, 0, FUZZ_MEM);
    size_t n = size - 2 < FUZZ_MEM - SBX_LAYOUT_XCHG ? size - 2 : FUZZ_MEM - SBX_LAYOUT_XCHG;
    memcpy(s->vm.mem + SBX_LAYOUT_XCHG, data + 2, n);
    s->xchg_data_used = 0;
    s->log_count = 0;
    struct sbx_diag d = { 0 };
    sbx_hypercall(s, data[0] % 8, data[1] % 4, &d);
    if (sbx_read_functions(s, &d) == 0 && s->nfuncs > SBX_MAX_FUNCS)
        abort();
    const struct sbx_xchg *x = sbx_xchg(&s->vm);
    for (int t = SBX_T_I32; t < SBX_T_COUNT_; t++) {
        struct sbx_value v;
        int rc = sbx_value_decode(s, &x->args[t % SBX_ABI_MAX_ARGS], (enum sbx_type)t, &v,
                                  "fuzzed value", &d);
        if (rc == 0 && (t == SBX_T_STR || t == SBX_T_BYTES) && v.u.buf.len) {
            /* an accepted range is inside guest memory: ASan checks both ends */
            volatile uint8_t first = ((const uint8_t *)v.u.buf.ptr)[0];
            volatile uint8_t last = ((const uint8_t *)v.u.buf.ptr)[v.u.buf.len - 1];
            (void)first, (void)last;
        }
    }
    return 0;
}
