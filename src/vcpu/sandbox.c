/* sandbox.c - the public sandbox API: create, call, inspect, destroy. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug/debug.h"
#include "vcpu.h"

const char *sbx_type_name(enum sbx_type t)
{
    static const char *names[] = { "void", "i32", "i64", "u64", "f64", "bool", "str", "bytes" };
    return (unsigned)t < SBX_T_COUNT_ ? names[t] : "?";
}

/* The API's memory sizes must be ones the guest layout can map. */
_Static_assert(SBX_MEM_SIZE_MIN >= SBX_MEM_MIN && SBX_MEM_SIZE_MAX <= SBX_MEM_MAX,
               "API memory sizes fit the guest layout");
_Static_assert(SBX_GUEST_PAGE_SIZE == SBX_PAGE_SIZE, "the page size snapshots count in");

int sbx_check_mem_size(uint64_t mem_size, struct sbx_diag *diag)
{
    if (mem_size < SBX_MEM_SIZE_MIN || mem_size > SBX_MEM_SIZE_MAX ||
        mem_size % (2ull << 20) != 0)
        return sbx_fail(diag, SBX_E_LIMIT, "guest memory size %llu is not a multiple of 2 MiB "
                        "between %llu and %llu bytes", (unsigned long long)mem_size,
                        (unsigned long long)SBX_MEM_SIZE_MIN,
                        (unsigned long long)SBX_MEM_SIZE_MAX);
    return 0;
}

/* Fill the defaults of *in into *out and check the result. */
static int resolve_config(const struct sbx_config *in, struct sbx_config *out,
                          struct sbx_diag *diag)
{
    *out = *in;
    if (!out->mem_size)
        out->mem_size = SBX_DEFAULT_MEM_SIZE;
    if (!out->deadline_ms)
        out->deadline_ms = SBX_DEFAULT_DEADLINE_MS;
    if (!out->deadline_signal)
        out->deadline_signal = SIGRTMIN + 1;
    if (!out->mem_mode)
        out->mem_mode = SBX_MEM_COPY;
    if (!out->max_log_per_call)
        out->max_log_per_call = SBX_DEFAULT_MAX_LOG_PER_CALL;
    if (out->xchg_size % SBX_GUEST_PAGE_SIZE || out->xchg_size > SBX_MAX_XCHG_SIZE)
        return sbx_fail(diag, SBX_E_INVAL, "exchange area size %llu is not a multiple of 4 KiB "
                        "up to %llu bytes", (unsigned long long)out->xchg_size, SBX_MAX_XCHG_SIZE);
    if (out->stack_size % SBX_GUEST_PAGE_SIZE || out->stack_size > SBX_MAX_STACK_SIZE)
        return sbx_fail(diag, SBX_E_INVAL, "stack size %llu is not a multiple of 4 KiB up to "
                        "%llu bytes", (unsigned long long)out->stack_size, SBX_MAX_STACK_SIZE);
    int rc = sbx_check_mem_size(out->mem_size, diag);
    if (rc)
        return rc;
    if (out->mem_mode != SBX_MEM_COPY && out->mem_mode != SBX_MEM_COW)
        return sbx_fail(diag, SBX_E_INVAL, "memory mode %d is not SBX_MEM_COPY or SBX_MEM_COW",
                        out->mem_mode);
    if (out->deadline_signal < SIGRTMIN || out->deadline_signal > SIGRTMAX)
        return sbx_fail(diag, SBX_E_INVAL, "deadline signal %d is not a real-time signal",
                        out->deadline_signal);
    if (out->gdb_addr)
        return sbx_gdb_check_addr(out->gdb_addr, diag);
    return 0;
}

/* The caller's strings may go before the sandbox does: it keeps copies. */
static int keep_strings(struct sbx_sandbox *s, struct sbx_diag *diag)
{
    if (s->cfg.core_dump_dir && !(s->core_dir = strdup(s->cfg.core_dump_dir)))
        return sbx_fail(diag, SBX_E_NOMEM, "out of memory");
    s->cfg.core_dump_dir = s->core_dir;
    s->cfg.gdb_addr = NULL; /* the stub copies it */
    return 0;
}

static int boot(struct sbx_sandbox *s, const struct sbx_guest *g, struct sbx_diag *diag)
{
    int rc = sbx_mem_prepare(&s->vm, g, s->cfg.stack_size, s->cfg.xchg_size, diag);
    if (rc)
        return rc;
    struct sbx_guest_facts facts = { .hash = g->hash };
    facts.has_note = sbx_guest_note(g, &facts.version) != SBX_NOTE_NONE;
    sbx_sandbox_set_guest_facts(s, &facts);
    rc = sbx_x86_set_initial_state(&s->vm, g->entry, sbx_boot_info(&s->vm)->stack_top, diag);
    if (rc)
        return rc;
    rc = sbx_run(s, SBX_HC_READY, diag);
    if (rc) {
        sbx_core_after_failure(s, rc, diag);
        return rc;
    }
    return sbx_read_functions(s, diag);
}

int sbx_sandbox_alloc(const struct sbx_config *cfg, uint64_t mem_size, struct sbx_sandbox **out,
                      struct sbx_diag *diag)
{
    struct sbx_sandbox *s = calloc(1, sizeof *s);
    if (!s)
        return sbx_fail(diag, SBX_E_NOMEM, "out of memory for a sandbox");
    s->vm = SBX_VM_EMPTY;
    struct sbx_config wanted;
    int rc = sbx_opts_in(&wanted, sizeof wanted, cfg, "sbx_config", diag);
    if (rc)
        goto err;
    if (mem_size && wanted.mem_size && mem_size > wanted.mem_size) {
        rc = sbx_fail(diag, SBX_E_LIMIT, "the snapshot needs %llu bytes of guest memory; the "
                      "configuration allows %llu (mem_size)", (unsigned long long)mem_size,
                      (unsigned long long)wanted.mem_size);
        goto err;
    }
    if (mem_size)
        wanted.mem_size = mem_size;
    rc = resolve_config(&wanted, &s->cfg, diag);
    if (rc || (rc = sbx_gdb_attach(s, diag)) || (rc = keep_strings(s, diag)))
        goto err;
    if (s->cfg.host_fns) {
        sbx_host_fns_hold(s->cfg.host_fns);
        s->host_fns = s->cfg.host_fns;
    }
    *out = s;
    return 0;
err:
    sbx_sandbox_destroy(s);
    return rc;
}

int sbx_sandbox_new(const struct sbx_config *cfg, uint64_t mem_size, struct sbx_sandbox **out,
                    struct sbx_diag *diag)
{
    struct sbx_sandbox *s = NULL;
    int rc = sbx_sandbox_alloc(cfg, mem_size, &s, diag);
    if (rc)
        return rc;
    static const struct sbx_vm_opts lazy = { .memfd = -1 };
    rc = sbx_vm_create(&s->vm, s->cfg.mem_size, &lazy, diag);
    if (rc) {
        sbx_sandbox_destroy(s);
        return rc;
    }
    *out = s;
    return 0;
}

int sbx_sandbox_create(const struct sbx_guest *g, const struct sbx_config *cfg,
                       struct sbx_sandbox **out, struct sbx_diag *diag)
{
    if (!g || !out)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_sandbox_create: guest and out are required");
    struct sbx_sandbox *s = NULL;
    int rc = sbx_sandbox_new(cfg, 0, &s, diag);
    if (rc)
        return rc;
    sbx_sandbox_set_name(s, g->path);
    rc = boot(s, g, diag);
    if (rc) {
        sbx_diag_prefix(diag, "%s: initialisation", g->path);
        sbx_sandbox_destroy(s);
        return rc;
    }
    *out = s;
    return 0;
}

static const struct sbx_func *find_func(const struct sbx_sandbox *s, const char *name)
{
    for (size_t i = 0; i < s->nfuncs; i++)
        if (strcmp(s->funcs[i].name, name) == 0)
            return &s->funcs[i];
    return NULL;
}

static void format_signature(const struct sbx_func *f, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s(", f->name);
    for (size_t i = 0; i < f->nargs && n > 0 && (size_t)n < cap; i++)
        n += snprintf(out + n, cap - (size_t)n, "%s%s", i ? ", " : "",
                      sbx_type_name(f->arg_types[i]));
    if (n > 0 && (size_t)n < cap)
        snprintf(out + n, cap - (size_t)n, ") -> %s", sbx_type_name(f->ret_type));
}

static int check_args(const struct sbx_func *f, const struct sbx_value *args, size_t nargs,
                      struct sbx_diag *diag)
{
    size_t bad = 0; /* 1-based index of the first mismatched argument */
    for (size_t i = 0; i < nargs && i < f->nargs && !bad; i++)
        if (args[i].type != f->arg_types[i])
            bad = i + 1;
    if (nargs == f->nargs && !bad)
        return 0;
    char sig[256]; /* formatted only for the error message */
    format_signature(f, sig, sizeof sig);
    if (nargs != f->nargs)
        return sbx_fail(diag, SBX_E_ARGS, "%s takes %u arguments, got %zu", sig, f->nargs, nargs);
    return sbx_fail(diag, SBX_E_ARGS, "%s: argument %zu is %s, expected %s", sig, bad,
                    sbx_type_name(args[bad - 1].type), sbx_type_name(f->arg_types[bad - 1]));
}

/* Checked before anything is written, so a refused call leaves no data in
 * guest memory for a later request to find. */
static int check_args_fit(const struct sbx_sandbox *s, const struct sbx_value *args, size_t nargs,
                          struct sbx_diag *diag)
{
    uint64_t total = 0, room = sbx_xchg_data_size(&s->vm);
    for (size_t i = 0; i < nargs; i++) {
        if (args[i].type != SBX_T_STR && args[i].type != SBX_T_BYTES)
            continue;
        if (args[i].u.buf.len > room - total)
            return sbx_fail(diag, SBX_E_LIMIT, "string and bytes arguments exceed the %llu-byte "
                            "exchange area (xchg_size)", (unsigned long long)room);
        total += args[i].u.buf.len;
    }
    return 0;
}

/* Encode the call's arguments into the exchange area (value.c); strings and
 * bytes go to xchg.data, from its start. check_args_fit has made sure they fit. */
static void write_args(struct sbx_sandbox *s, const struct sbx_value *args, size_t nargs)
{
    struct sbx_xchg *x = sbx_xchg(&s->vm);
    s->xchg_data_used = 0;
    for (size_t i = 0; i < nargs; i++)
        (void)sbx_value_encode(s, &args[i], &x->args[i]);
}

static int read_result(struct sbx_sandbox *s, const struct sbx_func *f, struct sbx_value *ret,
                       struct sbx_diag *diag)
{
    struct sbx_abi_value raw = sbx_xchg(&s->vm)->ret;
    struct sbx_value v = { .type = SBX_T_VOID };
    if (f->ret_type != SBX_T_VOID) {
        char what[SBX_MAX_NAME + 32];
        snprintf(what, sizeof what, "the result of '%s'", f->name);
        int rc = sbx_value_decode(s, &raw, f->ret_type, &v, what, diag);
        if (rc)
            return rc;
    }
    if (v.type == SBX_T_STR || v.type == SBX_T_BYTES) {
        if (v.u.buf.len + 1 > s->result_cap) {
            uint8_t *p = realloc(s->result, v.u.buf.len + 1);
            if (!p)
                return sbx_fail(diag, SBX_E_NOMEM, "out of memory for a %zu-byte result",
                                v.u.buf.len);
            s->result = p;
            s->result_cap = v.u.buf.len + 1;
        }
        memcpy(s->result, v.u.buf.ptr, v.u.buf.len);
        s->result[v.u.buf.len] = '\0'; /* convenience for strings; len excludes it */
        v.u.buf.ptr = s->result;
    }
    if (ret)
        *ret = v;
    return 0;
}

static int call_locked(struct sbx_sandbox *s, const char *name, const struct sbx_value *args,
                       size_t nargs, struct sbx_value *ret, struct sbx_diag *diag);

int sbx_sandbox_call(struct sbx_sandbox *s, const char *name, const struct sbx_value *args,
                     size_t nargs, struct sbx_value *ret, struct sbx_diag *diag)
{
    if (!s || !name || (nargs && !args))
        return sbx_fail(diag, SBX_E_INVAL, "sbx_sandbox_call: sandbox, name and args are required");
    if (atomic_exchange(&s->in_call, true))
        return sbx_fail(diag, SBX_E_BUSY, "sandbox is already in a call: a host function may not "
                        "call into its own sandbox");
    int rc = call_locked(s, name, args, nargs, ret, diag);
    atomic_store(&s->in_call, false);
    return rc;
}

static int call_locked(struct sbx_sandbox *s, const char *name, const struct sbx_value *args,
                       size_t nargs, struct sbx_value *ret, struct sbx_diag *diag)
{
    if (s->poisoned)
        return sbx_fail(diag, SBX_E_POISONED, "sandbox is poisoned by an earlier abort, fault or "
                        "timeout; restore or recreate it");
    const struct sbx_func *f = find_func(s, name);
    if (!f)
        return sbx_fail(diag, SBX_E_NO_FUNC, "guest has no function '%s'", name);
    int rc = check_args(f, args, nargs, diag);
    if (rc || (rc = check_args_fit(s, args, nargs, diag)))
        return rc;
    write_args(s, args, nargs);
    struct sbx_xchg *x = sbx_xchg(&s->vm);
    x->restored = s->restored;
    s->restored = false;
    x->call_index = (uint32_t)(f - s->funcs);
    x->nargs = (uint32_t)nargs;
    x->ret = (struct sbx_abi_value){ .type = sbx_type_to_abi(f->ret_type) };
    rc = sbx_run(s, SBX_HC_RETURN, diag);
    if (rc)
        sbx_core_after_failure(s, rc, diag);
    if (s->xchg_data_used > s->xchg_dirty_hi)
        s->xchg_dirty_hi = s->xchg_data_used;
    if (rc == 0)
        rc = read_result(s, f, ret, diag);
    if (rc && rc != SBX_E_NOMEM)
        s->poisoned = true;
    return rc;
}

bool sbx_sandbox_poisoned(const struct sbx_sandbox *s) { return s->poisoned; }

/* In anonymous memory a page never touched is zero. A copy-on-write
 * sandbox's untouched pages show the template: it is scanned whole. */
uint64_t *sbx_sandbox_touched_pages(const struct sbx_sandbox *s)
{
    bool anonymous = !(s->tpl && s->cfg.mem_mode == SBX_MEM_COW);
    return anonymous ? sbx_vm_touched_pages(&s->vm) : NULL;
}

void sbx_sandbox_set_name(struct sbx_sandbox *s, const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    size_t n = 0;
    /* it goes into file names: only [A-Za-z0-9._-] */
    for (; name[n] && n < sizeof s->name - 1; n++) {
        char c = name[n];
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '.' || c == '_' || c == '-';
        s->name[n] = plain ? c : '_';
    }
    s->name[n] = '\0';
}

/* The snapshot's state on a vCPU that never ran: its CPUID first (KVM fixes
 * CPUID at the first KVM_RUN), then the rest. What the vCPU then holds,
 * including MSRs the snapshot did not record (left at their power-on
 * values), is what every reset puts back. */
int sbx_sandbox_start_state(struct sbx_sandbox *s, const struct sbx_vcpu_state *st,
                            struct sbx_diag *diag)
{
    int rc = sbx_vm_adopt_boot_info(&s->vm, diag);
    if (rc == 0 && st->ncpuid)
        rc = sbx_cpuid_set(&s->vm, st, diag);
    if (rc || (rc = sbx_vcpu_load(&s->vm, st, diag)))
        return rc;
    if (!s->reset_state && !(s->reset_state = malloc(sizeof *s->reset_state)))
        return sbx_fail(diag, SBX_E_NOMEM, "out of memory for the vCPU state");
    rc = sbx_vcpu_save(&s->vm, s->reset_state, diag);
    sbx_sandbox_mark_restored(s);
    return rc;
}

/* The next call request tells the guest library to run its restore hooks.
 * Kept in the sandbox, not guest memory, so a reset leaves memory exactly
 * the template's. */
void sbx_sandbox_mark_restored(struct sbx_sandbox *s) { s->restored = true; }

void sbx_sandbox_set_template(struct sbx_sandbox *s, const struct sbx_template *t)
{
    s->tpl = t;
}

void sbx_sandbox_set_owner(struct sbx_sandbox *s, const void *owner) { s->owner = owner; }

const void *sbx_sandbox_owner(const struct sbx_sandbox *s) { return s->owner; }

void sbx_sandbox_set_keep(struct sbx_sandbox *s, uint64_t *keep)
{
    free(s->keep);
    s->keep = keep;
    s->trimmed = false;
}

void sbx_sandbox_set_trimmed(struct sbx_sandbox *s) { s->trimmed = true; }

void sbx_sandbox_after_reset(struct sbx_sandbox *s, bool ok)
{
    s->poisoned = !ok;
    if (!ok)
        return;
    sbx_sandbox_mark_restored(s);
    s->xchg_data_used = 0;
    s->xchg_dirty_hi = 0;
}

int sbx_sandbox_set_functions(struct sbx_sandbox *s, const struct sbx_func *funcs, size_t n,
                              struct sbx_diag *diag)
{
    if (n > SBX_MAX_FUNCS)
        return sbx_fail(diag, SBX_E_LIMIT, "%zu guest functions; a sandbox holds at most %u", n,
                        SBX_MAX_FUNCS);
    if (n)
        memcpy(s->funcs, funcs, n * sizeof *funcs);
    s->nfuncs = n;
    return 0;
}

const struct sbx_func *sbx_sandbox_functions(const struct sbx_sandbox *s, size_t *n)
{
    *n = s->nfuncs;
    return s->funcs;
}

void sbx_sandbox_set_guest_facts(struct sbx_sandbox *s, const struct sbx_guest_facts *facts)
{
    s->guest = *facts;
}

const struct sbx_guest_facts *sbx_sandbox_guest_facts(const struct sbx_sandbox *s)
{
    return &s->guest;
}

size_t sbx_sandbox_function_count(const struct sbx_sandbox *s) { return s->nfuncs; }

/* Shared with sbx_snapshot_function: both describe a struct sbx_func. */
int sbx_func_info_out(const struct sbx_func *f, struct sbx_func_info *out, struct sbx_diag *diag)
{
    struct sbx_func_info fi = { .sz = sizeof fi, .name = f->name, .args = f->arg_types,
                                .nargs = f->nargs, .ret = f->ret_type };
    return sbx_opts_out(out, &fi, sizeof fi, "sbx_func_info", diag);
}

int sbx_sandbox_function(const struct sbx_sandbox *s, size_t i, struct sbx_func_info *out,
                         struct sbx_diag *diag)
{
    if (!s || !out || i >= s->nfuncs)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_sandbox_function: no function %zu (the guest "
                        "has %zu)", i, s ? s->nfuncs : 0);
    return sbx_func_info_out(&s->funcs[i], out, diag);
}

int sbx_sandbox_find_function(const struct sbx_sandbox *s, const char *name,
                              struct sbx_func_info *out, struct sbx_diag *diag)
{
    if (!s || !name || !out)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_sandbox_find_function: sandbox, name and out "
                        "are required");
    const struct sbx_func *f = find_func(s, name);
    if (!f)
        return sbx_fail(diag, SBX_E_NO_FUNC, "guest has no function '%s'", name);
    return sbx_func_info_out(f, out, diag);
}

void sbx_sandbox_destroy(struct sbx_sandbox *s)
{
    if (!s)
        return;
    sbx_gdb_free(s);
    free(s->core_dir);
    sbx_deadline_free(&s->deadline);
    sbx_vm_destroy(&s->vm);
    sbx_template_release(s->tpl);
    free(s->reset_state);
    sbx_host_fns_release(s->host_fns);
    free(s->result);
    free(s->keep);
    free(s);
}
