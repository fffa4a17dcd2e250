/* host_fns.c - the host functions a guest may call: a set built by
 * sbx_host_fns_add, checked by the one name and signature rule, shared by
 * reference between the caller and the sandboxes that use it. */
#include <stdlib.h>
#include <string.h>

#include "vcpu.h"

int sbx_host_fns_new(struct sbx_host_fns **out, struct sbx_diag *diag)
{
    if (!out)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_host_fns_new: out is required");
    struct sbx_host_fns *h = calloc(1, sizeof *h);
    if (!h)
        return sbx_fail(diag, SBX_E_NOMEM, "out of memory for a host function set");
    atomic_init(&h->refs, 1);
    atomic_init(&h->frozen, false);
    *out = h;
    return 0;
}

static int check_new_fn(const struct sbx_host_fns *h, const char *name, enum sbx_type ret,
                        size_t nargs, const enum sbx_type *args, sbx_host_cb fn,
                        struct sbx_diag *diag)
{
    if (atomic_load(&h->frozen))
        return sbx_fail(diag, SBX_E_BUSY, "host function set is in use by a sandbox; build a "
                        "new set to add '%s'", name ? name : "(null)");
    if (!name || !fn || !sbx_valid_func_name(name, strlen(name)) ||
        !sbx_valid_signature(ret, nargs, args))
        return sbx_fail(diag, SBX_E_INVAL, "host function '%s': needs a name of 1..%u "
                        "characters of [A-Za-z0-9_], a callback, at most %u arguments and "
                        "valid types", name ? name : "(null)", SBX_MAX_NAME, SBX_MAX_ARGS);
    if (sbx_host_fns_find(h, name))
        return sbx_fail(diag, SBX_E_INVAL, "host function '%s' is registered twice", name);
    return 0;
}

static int grow(struct sbx_host_fns *h, struct sbx_diag *diag)
{
    if (h->n < h->cap)
        return 0;
    size_t cap = h->cap ? 2 * h->cap : 8;
    struct sbx_host_fn *p = realloc(h->fns, cap * sizeof *p);
    if (!p)
        return sbx_fail(diag, SBX_E_NOMEM, "out of memory for host functions");
    h->fns = p;
    h->cap = cap;
    return 0;
}

int sbx_host_fns_add(struct sbx_host_fns *h, const char *name, enum sbx_type ret, size_t nargs,
                     const enum sbx_type *args, sbx_host_cb fn, void *ctx, struct sbx_diag *diag)
{
    if (!h)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_host_fns_add: the set is required");
    int rc = check_new_fn(h, name, ret, nargs, args, fn, diag);
    if (rc || (rc = grow(h, diag)))
        return rc;
    struct sbx_host_fn *f = &h->fns[h->n];
    *f = (struct sbx_host_fn){ .ret = ret, .nargs = nargs, .fn = fn, .ctx = ctx };
    memcpy(f->name, name, strlen(name) + 1); /* fits: checked by the name rule */
    if (nargs)
        memcpy(f->args, args, nargs * sizeof *args);
    h->n++;
    return 0;
}

size_t sbx_host_fns_count(const struct sbx_host_fns *h) { return h ? h->n : 0; }

const struct sbx_host_fn *sbx_host_fns_find(const struct sbx_host_fns *h, const char *name)
{
    for (size_t i = 0; h && i < h->n; i++)
        if (strcmp(h->fns[i].name, name) == 0)
            return &h->fns[i];
    return NULL;
}

/* The count and the frozen flag are the only parts that change after
 * sharing: the const is the caller's promise not to add, kept by the flag. */
void sbx_host_fns_hold(const struct sbx_host_fns *h)
{
    struct sbx_host_fns *m = (struct sbx_host_fns *)h;
    atomic_store(&m->frozen, true);
    atomic_fetch_add(&m->refs, 1);
}

void sbx_host_fns_release(const struct sbx_host_fns *h)
{
    struct sbx_host_fns *m = (struct sbx_host_fns *)h;
    if (!m || atomic_fetch_sub(&m->refs, 1) != 1)
        return;
    free(m->fns);
    free(m);
}

void sbx_host_fns_free(struct sbx_host_fns *h) { sbx_host_fns_release(h); }
