/* hypercall.c - decode and serve the guest's hypercalls. Everything the guest
 * hands over is read once from the exchange area and range-checked. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "vcpu.h"

static const char *op_name(uint8_t op)
{
    switch (op) {
    case SBX_HC_READY: return "READY";
    case SBX_HC_RETURN: return "RETURN";
    case SBX_HC_LOG: return "LOG";
    case SBX_HC_ABORT: return "ABORT";
    case SBX_HC_HOST_CALL: return "HOST_CALL";
    case SBX_HC_TIME: return "TIME";
    case SBX_HC_RANDOM: return "RANDOM";
    default: return "unknown";
    }
}

/* Copy guest bytes [gpa, gpa + len) into out as a printable C string. */
static int read_text(struct sbx_sandbox *s, uint64_t gpa, uint64_t len, char *out, size_t cap,
                     const char *what, struct sbx_diag *diag)
{
    const char *src = sbx_mem_at(&s->vm, gpa, len);
    if (!src)
        return sbx_fail(diag, SBX_E_GUEST_ABI,
                        "guest passed %s at 0x%llx, length %llu, outside its %llu bytes of memory",
                        what, (unsigned long long)gpa, (unsigned long long)len,
                        (unsigned long long)s->vm.mem_size);
    size_t n = len < cap - 1 ? (size_t)len : cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (src[i] >= 0x20 && src[i] < 0x7f) || src[i] == '\n' || src[i] == '\t' ? src[i] : '?';
    out[n] = '\0';
    return 0;
}

static int hc_log(struct sbx_sandbox *s, const struct sbx_xchg *x, struct sbx_diag *diag)
{
    enum sbx_log_level level;
    if (!sbx_log_level_from_abi(x->hc_a[0], &level))
        return sbx_fail(diag, SBX_E_GUEST_ABI, "guest log level %llu is not a valid level",
                        (unsigned long long)x->hc_a[0]);
    char msg[SBX_MAX_LOG_MSG + 1];
    int rc = read_text(s, x->hc_a[1], x->hc_a[2], msg, sizeof msg, "a log message", diag);
    if (rc)
        return rc;
    if (s->log_count < UINT32_MAX)
        s->log_count++;
    if (s->log_count > s->cfg.max_log_per_call)
        return 0; /* counted; sbx_run reports the drop once */
    if (s->cfg.log)
        s->cfg.log(s->cfg.log_ctx, level, msg);
    return 0;
}

static int hc_abort(struct sbx_sandbox *s, const struct sbx_xchg *x, struct sbx_diag *diag)
{
    char msg[256];
    int32_t code = (int32_t)x->hc_a[0];
    if (read_text(s, x->hc_a[1], x->hc_a[2], msg, sizeof msg, "an abort message", NULL))
        snprintf(msg, sizeof msg, "(message at 0x%llx is outside guest memory)",
                 (unsigned long long)x->hc_a[1]);
    int rc = sbx_fail(diag, SBX_E_GUEST_ABORT, "guest aborted with code %d: %s", code, msg);
    if (diag)
        diag->abort_code = code;
    return rc;
}

static int hc_host_call(struct sbx_sandbox *s, const struct sbx_xchg *x, struct sbx_diag *diag)
{
    char name[SBX_ABI_MAX_NAME + 1];
    struct sbx_xchg *shared = sbx_xchg(&s->vm);
    if (x->hc_a[1] == 0 || x->hc_a[1] > SBX_ABI_MAX_NAME)
        return sbx_fail(diag, SBX_E_GUEST_ABI, "guest host-call name length %llu is not 1..%u",
                        (unsigned long long)x->hc_a[1], SBX_ABI_MAX_NAME);
    int rc = read_text(s, x->hc_a[0], x->hc_a[1], name, sizeof name, "a host function name", diag);
    if (rc)
        return rc;
    const struct sbx_host_fn *fn = sbx_host_fns_find(s->host_fns, name);
    if (!fn) {
        sbx_logf(s->cfg.log, s->cfg.log_ctx, SBX_LOG_WARN, "guest called unknown host function '%s'",
                 name);
        shared->host_status = SBX_E_NO_FUNC;
        return 0;
    }
    if (x->nargs != fn->nargs)
        return sbx_fail(diag, SBX_E_GUEST_ABI, "guest called host function '%s' with %u arguments, "
                        "it takes %zu", name, x->nargs, fn->nargs);
    struct sbx_value args[SBX_MAX_ARGS];
    for (uint32_t i = 0; i < x->nargs; i++) {
        char what[SBX_ABI_MAX_NAME + 48];
        snprintf(what, sizeof what, "argument %u of host function '%s'", i + 1, name);
        rc = sbx_value_decode(s, &x->args[i], fn->args[i], &args[i], what, diag);
        if (rc)
            return rc;
    }
    struct sbx_value ret = { .type = fn->ret };
    int32_t status = fn->fn(fn->ctx, args, x->nargs, &ret);
    if (status == 0 && ret.type != fn->ret)
        status = SBX_E_HOST_FN;
    if (status == 0)
        status = sbx_value_encode(s, &ret, &shared->ret);
    shared->host_status = status < 0 ? status : 0;
    return 0;
}

/* Host time; the guest library keeps its monotonic clock from going back
 * across a restore on another host. */
static int hc_time(struct sbx_sandbox *s, const struct sbx_xchg *x, struct sbx_diag *diag)
{
    if (x->hc_a[0] != SBX_CLOCK_REALTIME && x->hc_a[0] != SBX_CLOCK_MONOTONIC)
        return sbx_fail(diag, SBX_E_GUEST_ABI, "guest asked for clock %llu, not 0 or 1",
                        (unsigned long long)x->hc_a[0]);
    struct timespec ts;
    clock_gettime(x->hc_a[0] == SBX_CLOCK_REALTIME ? CLOCK_REALTIME : CLOCK_MONOTONIC, &ts);
    struct sbx_xchg *shared = sbx_xchg(&s->vm);
    shared->hc_a[0] = (uint64_t)ts.tv_sec;
    shared->hc_a[1] = (uint64_t)ts.tv_nsec;
    return 0;
}

/* Fresh entropy on every call: sandboxes restored from one snapshot must not
 * share random streams. */
static int hc_random(struct sbx_sandbox *s, const struct sbx_xchg *x, struct sbx_diag *diag)
{
    uint8_t *dst = x->hc_a[1] <= SBX_RANDOM_MAX ? sbx_mem_at(&s->vm, x->hc_a[0], x->hc_a[1]) : NULL;
    if (!dst)
        return sbx_fail(diag, SBX_E_GUEST_ABI, "guest asked for %llu random bytes at 0x%llx: "
                        "outside its memory or over %u", (unsigned long long)x->hc_a[1],
                        (unsigned long long)x->hc_a[0], SBX_RANDOM_MAX);
    for (size_t got = 0; got < x->hc_a[1];) {
        ssize_t n = getrandom(dst + got, x->hc_a[1] - got, 0);
        if (n < 0 && errno != EINTR)
            return sbx_fail(diag, SBX_E_KVM, "getrandom for the guest failed: %s",
                            strerror(errno));
        got += n > 0 ? (size_t)n : 0;
    }
    sbx_mem_mark_host_write(&s->vm, x->hc_a[0], x->hc_a[1]);
    return 0;
}

int sbx_hypercall(struct sbx_sandbox *s, uint8_t op, uint8_t until, struct sbx_diag *diag)
{
    struct sbx_xchg x;
    memcpy(&x, sbx_xchg(&s->vm), sizeof x); /* one read: the guest cannot change it under us */
    switch (op) {
    case SBX_HC_LOG: return hc_log(s, &x, diag);
    case SBX_HC_ABORT: return hc_abort(s, &x, diag);
    case SBX_HC_HOST_CALL: return hc_host_call(s, &x, diag);
    case SBX_HC_TIME: return hc_time(s, &x, diag);
    case SBX_HC_RANDOM: return hc_random(s, &x, diag);
    case SBX_HC_READY:
    case SBX_HC_RETURN:
        if (op == until)
            return 1;
        return sbx_fail(diag, SBX_E_GUEST_ABI, "guest sent %s while the host waited for %s",
                        op_name(op), op_name(until));
    default:
        return sbx_fail(diag, SBX_E_GUEST_ABI, "guest made unknown hypercall %u", op);
    }
}

static int read_function(struct sbx_sandbox *s, const struct sbx_abi_func *in,
                         struct sbx_func *funcs, size_t i, struct sbx_diag *diag)
{
    struct sbx_func *f = &funcs[i];
    const char *name = sbx_mem_at(&s->vm, in->name_gpa, in->name_len);
    if (!name || !sbx_valid_func_name(name, in->name_len))
        return sbx_fail(diag, SBX_E_GUEST_ABI,
                        "guest function %zu: name at 0x%llx, length %u, is outside memory or not "
                        "1..%u characters of [A-Za-z0-9_]",
                        i, (unsigned long long)in->name_gpa, in->name_len, SBX_MAX_NAME);
    memcpy(f->name, name, in->name_len);
    f->name[in->name_len] = '\0';
    if (!sbx_signature_from_abi(in->ret_type, in->nargs, in->arg_types, f))
        return sbx_fail(diag, SBX_E_GUEST_ABI, "guest function '%s': return type %u, %u arguments "
                        "or an argument type is invalid", f->name, in->ret_type, in->nargs);
    for (size_t j = 0; j < i; j++)
        if (strcmp(funcs[j].name, f->name) == 0)
            return sbx_fail(diag, SBX_E_GUEST_ABI, "guest registered function '%s' twice", f->name);
    return 0;
}

/* At READY, hc_a[0] and hc_a[1] give the guest's function table. */
int sbx_read_functions(struct sbx_sandbox *s, struct sbx_diag *diag)
{
    const struct sbx_xchg *x = sbx_xchg(&s->vm);
    uint64_t gpa = x->hc_a[0], count = x->hc_a[1];
    if (count > SBX_MAX_FUNCS)
        return sbx_fail(diag, SBX_E_GUEST_ABI, "guest registered %llu functions, the limit is %u",
                        (unsigned long long)count, SBX_MAX_FUNCS);
    const struct sbx_abi_func *table = sbx_mem_at(&s->vm, gpa, count * sizeof *table);
    if (!table)
        return sbx_fail(diag, SBX_E_GUEST_ABI, "guest function table at 0x%llx is outside memory",
                        (unsigned long long)gpa);
    struct sbx_abi_func copy[SBX_MAX_FUNCS];
    memcpy(copy, table, count * sizeof *table);
    struct sbx_func funcs[SBX_MAX_FUNCS];
    for (size_t i = 0; i < count; i++) {
        int rc = read_function(s, &copy[i], funcs, i, diag);
        if (rc)
            return rc;
    }
    return sbx_sandbox_set_functions(s, funcs, count, diag);
}
