/* rules.c - a request filter: its initialisation compiles a few thousand POSIX
 * extended regular expressions with the C library's regcomp; match(text)
 * returns the ids of the rules that match. Compiling is the expensive part,
 * which is what a snapshot keeps: a restored sandbox starts with every rule
 * compiled. The rules are generated, so every build has the same ones. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbx_guest.h"

#define NRULES 2000
#define MAX_TEXT 4096

static regex_t rules[NRULES];
static char result[NRULES * 6];

/* Rule i, one of four kinds a filter would hold, made unique by i. */
static void rule_text(unsigned i, char *out, size_t cap)
{
    unsigned k = i / 4;
    switch (i % 4) {
    case 0: snprintf(out, cap, "[?&]p%u=[0-9]{%u,%u}(&|$)", k, 1 + k % 3, 4 + k % 5); break;
    case 1: snprintf(out, cap, "^/(api|v%u)/[a-z]+/%u(/|$)", k % 7, k); break;
    case 2: snprintf(out, cap, "(drop|union|select)[[:space:]]+t%u([^0-9]|$)", k); break;
    default: snprintf(out, cap, "^[a-z0-9._-]+@d%u\\.example$", k); break;
    }
}

static void count(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    (void)a;
    sbx_ret_i64(r, NRULES);
}

/* The ids of the matching rules, comma-separated ("" when none match). */
static void match(const struct sbx_abi_value *a, struct sbx_abi_value *r)
{
    static char text[MAX_TEXT + 1];
    size_t n = sbx_arg_len(a, 0);
    if (n > MAX_TEXT)
        sbx_abort(1, "match: text longer than 4096 bytes");
    memcpy(text, sbx_arg_ptr(a, 0), n);
    text[n] = '\0';
    size_t used = 0;
    for (unsigned i = 0; i < NRULES; i++)
        if (regexec(&rules[i], text, 0, NULL, 0) == 0)
            used += (size_t)snprintf(result + used, sizeof result - used, "%s%u", used ? "," : "", i);
    sbx_ret_buf(r, result, used);
}

void sbx_guest_init(void)
{
    char text[128];
    for (unsigned i = 0; i < NRULES; i++) {
        rule_text(i, text, sizeof text);
        if (regcomp(&rules[i], text, REG_EXTENDED | REG_NOSUB | REG_ICASE) != 0)
            sbx_abort(2, "rules: a generated rule does not compile");
    }
    printf("rules: %d rules compiled\n", NRULES);
    sbx_register("match", SBX_T_STR, match, 1, SBX_T_STR);
    sbx_register("count", SBX_T_I64, count, 0);
}
