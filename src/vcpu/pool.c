/* pool.c - blank VMs made ahead of requests: KVM VM, vCPU, mapped memory. */
#include <pthread.h>
#include <stdlib.h>

#include "vcpu.h"

struct sbx_pool {
    pthread_mutex_t lock;
    uint64_t mem_size;
    struct sbx_vm *vms;
    size_t n, cap;
};

/* Templates need the dirty log for reset. Memory is not faulted in: a pooled
 * VM holds resident only what its sandbox later uses, and costs the same to
 * make whatever its size; a ready pool (ready.c) prefaults working sets. */
static const struct sbx_vm_opts pool_vm_opts = { .memfd = -1, .dirty_log = true };

int sbx_pool_create(uint64_t mem_size, size_t count, struct sbx_pool **out, struct sbx_diag *diag)
{
    if (!out)
        return sbx_fail(diag, SBX_E_INVAL, "sbx_pool_create: out is required");
    int rc = sbx_check_mem_size(mem_size, diag);
    if (rc)
        return rc;
    struct sbx_pool *p = calloc(1, sizeof *p);
    if (!p)
        return sbx_fail(diag, SBX_E_NOMEM, "out of memory for a pool");
    pthread_mutex_init(&p->lock, NULL);
    p->mem_size = mem_size;
    rc = sbx_pool_fill(p, count, diag);
    if (rc) {
        sbx_pool_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

static int pool_push(struct sbx_pool *p, const struct sbx_vm *vm)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 8;
        struct sbx_vm *vms = realloc(p->vms, cap * sizeof *vms);
        if (!vms)
            return SBX_E_NOMEM;
        p->vms = vms;
        p->cap = cap;
    }
    p->vms[p->n++] = *vm;
    return 0;
}

int sbx_pool_fill(struct sbx_pool *p, size_t count, struct sbx_diag *diag)
{
    for (;;) {
        pthread_mutex_lock(&p->lock);
        bool full = p->n >= count;
        pthread_mutex_unlock(&p->lock);
        if (full)
            return 0;
        struct sbx_vm vm; /* made outside the lock: takers need not wait for it */
        int rc = sbx_vm_create(&vm, p->mem_size, &pool_vm_opts, diag);
        if (rc)
            return rc;
        pthread_mutex_lock(&p->lock);
        rc = pool_push(p, &vm);
        pthread_mutex_unlock(&p->lock);
        if (rc) {
            sbx_vm_destroy(&vm);
            return sbx_fail(diag, rc, "out of memory for the pool's list");
        }
    }
}

size_t sbx_pool_available(struct sbx_pool *p)
{
    pthread_mutex_lock(&p->lock);
    size_t n = p->n;
    pthread_mutex_unlock(&p->lock);
    return n;
}

bool sbx_pool_take(struct sbx_pool *p, uint64_t mem_size, struct sbx_vm *vm)
{
    bool taken = false;
    pthread_mutex_lock(&p->lock);
    if (p->mem_size == mem_size && p->n > 0) {
        *vm = p->vms[--p->n];
        taken = true;
    }
    pthread_mutex_unlock(&p->lock);
    return taken;
}

void sbx_pool_free(struct sbx_pool *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        sbx_vm_destroy(&p->vms[i]);
    free(p->vms);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
