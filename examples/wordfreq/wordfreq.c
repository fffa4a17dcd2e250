/* wordfreq.c - top(text, n): the n most frequent words of a text, one
 * "word count" line each, most frequent first (ties in alphabetical order).
 * Ordinary C on the C library: a hash table from malloc, qsort, snprintf,
 * and everything freed before the call returns. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbx_guest.h"

struct word {
    char *text;
    long count;
    struct word *next;
};

struct table {
    struct word **slot;
    size_t nslots, nwords;
};

static size_t hash(const char *s)
{
    size_t h = 5381;
    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h;
}

static void add(struct table *t, const char *w)
{
    struct word **p = &t->slot[hash(w) % t->nslots];
    for (; *p; p = &(*p)->next)
        if (strcmp((*p)->text, w) == 0) {
            (*p)->count++;
            return;
        }
    struct word *n = malloc(sizeof *n);
    if (!n || !(n->text = strdup(w)))
        sbx_abort(1, "top: out of memory");
    n->count = 1;
    n->next = NULL;
    *p = n;
    t->nwords++;
}

static int by_count(const void *a, const void *b)
{
    const struct word *x = *(struct word *const *)a, *y = *(struct word *const *)b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->text, y->text);
}

static char *report(struct table *t, long n, size_t *len)
{
    struct word **all = malloc((t->nwords ? t->nwords : 1) * sizeof *all);
    if (!all)
        sbx_abort(1, "top: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < t->nslots; i++)
        for (struct word *w = t->slot[i]; w; w = w->next)
            all[k++] = w;
    qsort(all, k, sizeof *all, by_count);
    size_t cap = 64, used = 0;
    char *out = malloc(cap);
    for (size_t i = 0; out && i < k && (long)i < n; i++) {
        size_t need = strlen(all[i]->text) + 24;
        if (used + need > cap && !(out = realloc(out, cap = 2 * cap + need)))
            break;
        used += (size_t)snprintf(out + used, cap - used, "%s %ld\n", all[i]->text, all[i]->count);
    }
    free(all);
    if (!out)
        sbx_abort(1, "top: out of memory");
    *len = used;
    return out;
}

static void free_table(struct table *t)
{
    for (size_t i = 0; i < t->nslots; i++)
        for (struct word *w = t->slot[i], *next; w; w = next) {
            next = w->next;
            free(w->text);
            free(w);
        }
    free(t->slot);
}

static void top(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    static char *last; /* the previous result, freed when the next is made */
    const char *text = sbx_arg_ptr(a, 0);
    size_t len = sbx_arg_len(a, 0);
    struct table t = { .nslots = 1024 };
    t.slot = calloc(t.nslots, sizeof *t.slot);
    char *word = malloc(len + 1);
    if (!t.slot || !word)
        sbx_abort(1, "top: out of memory");
    for (size_t i = 0; i < len;) {
        size_t w = 0;
        while (i < len && isalnum((unsigned char)text[i]))
            word[w++] = (char)tolower((unsigned char)text[i++]);
        word[w] = '\0';
        if (w)
            add(&t, word);
        while (i < len && !isalnum((unsigned char)text[i]))
            i++;
    }
    free(word);
    free(last);
    size_t out_len;
    last = report(&t, sbx_arg_i64(a, 1), &out_len);
    free_table(&t);
    sbx_ret_buf(r, last, out_len);
}

void sbx_guest_init(void)
{
    sbx_register("top", SBX_T_STR, top, 2, SBX_T_STR, SBX_T_I64);
}
