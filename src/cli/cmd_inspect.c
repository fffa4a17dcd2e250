/* cmd_inspect.c - `snapbox inspect`: what a guest ELF holds and whether this host takes it. */
#include <elf.h>
#include <string.h>

#include "cli.h"

static const char *note_where(enum sbx_note_source src)
{
    switch (src) {
    case SBX_NOTE_FROM_PHDR: return "PT_NOTE program header";
    case SBX_NOTE_FROM_SECTION: return "SHT_NOTE section";
    default: return "none";
    }
}

static void perms(uint32_t flags, char out[4])
{
    out[0] = (flags & PF_R) ? 'R' : '-';
    out[1] = (flags & PF_W) ? 'W' : '-';
    out[2] = (flags & PF_X) ? 'X' : '-';
    out[3] = '\0';
}

static void print_text(const struct sbx_guest *g, const struct sbx_version *host,
                       enum sbx_note_source src, const struct sbx_version *gv,
                       const char *policy, const struct sbx_diag *verdict)
{
    printf("file:      %s\n", sbx_guest_path(g));
    printf("entry:     0x%llx\n", (unsigned long long)sbx_guest_entry(g));
    printf("segments:  %zu\n", sbx_guest_segment_count(g));
    for (size_t i = 0; i < sbx_guest_segment_count(g); i++) {
        const struct sbx_segment *s = sbx_guest_segment(g, i);
        char p[4];
        perms(s->flags, p);
        printf("  LOAD vaddr 0x%llx memsz 0x%llx filesz 0x%llx offset 0x%llx %s\n",
               (unsigned long long)s->vaddr, (unsigned long long)s->memsz,
               (unsigned long long)s->filesz, (unsigned long long)s->offset, p);
    }
    printf("note:      %s\n", note_where(src));
    if (src != SBX_NOTE_NONE)
        printf("guest:     snapbox %s (abi %u)\n", gv->string, gv->abi);
    else
        printf("guest:     unknown (no version note)\n");
    printf("host:      snapbox %s (abi %u)\n", host->string, host->abi);
    printf("verdict:   %s under policy %s%s%s\n", verdict->code ? "rejected" : "accepted", policy,
           verdict->code ? ": " : "", verdict->code ? verdict->msg : "");
}

static json_t *segments_json(const struct sbx_guest *g)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < sbx_guest_segment_count(g); i++) {
        const struct sbx_segment *s = sbx_guest_segment(g, i);
        char p[4];
        perms(s->flags, p);
        if (json_array_append_new(a, json_pack("{s:I, s:I, s:I, s:I, s:s}",
                                               "vaddr", (json_int_t)s->vaddr,
                                               "memsz", (json_int_t)s->memsz,
                                               "filesz", (json_int_t)s->filesz,
                                               "offset", (json_int_t)s->offset, "flags", p))) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static int print_json(const struct cli *c, const struct sbx_guest *g,
                      const struct sbx_version *host, enum sbx_note_source src,
                      const struct sbx_version *gv, const struct sbx_diag *verdict)
{
    bool note = src != SBX_NOTE_NONE;
    json_t *o = json_pack("{s:o, s:I, s:o, s:s, s:o, s:o, s:o, s:I}",
                          "file", cj_cstr(sbx_guest_path(g)),
                          "entry", (json_int_t)sbx_guest_entry(g),
                          "segments", segments_json(g), "note", note_where(src),
                          "guest_version", note ? cj_cstr(gv->string) : json_null(),
                          "guest_abi", note ? json_integer(gv->abi) : json_null(),
                          "host_version", cj_cstr(host->string), "host_abi", (json_int_t)host->abi);
    /* a rejected guest is the command's error: in the same object */
    if (cj_add_verdict(o, c->policy, verdict) ||
        (verdict->code && json_object_update_new(o, cj_error(verdict)))) {
        json_decref(o);
        o = NULL;
    }
    return cj_emit(o, verdict->code ? cli_exit_code(verdict->code) : EXIT_OK_);
}

static int inspect(struct cli *c)
{
    struct sbx_diag diag = { 0 }, verdict = { 0 };
    struct sbx_guest *g = NULL;
    if (sbx_guest_open(c->pos[0], &g, &diag))
        return cli_report(c, &diag);
    struct sbx_version host, gv;
    sbx_host_version(&host);
    enum sbx_note_source src = sbx_guest_note(g, &gv);
    cli_guest_verdict(c, g, &verdict);
    int rc;
    if (c->json) {
        rc = print_json(c, g, &host, src, &gv, &verdict);
    } else {
        print_text(g, &host, src, &gv, cli_policy_name(c->policy), &verdict);
        rc = verdict.code ? cli_report(c, &verdict) : EXIT_OK_;
    }
    sbx_guest_free(g);
    return rc;
}

const struct cli_cmd cli_cmd_inspect = {
    .name = "inspect",
    .synopsis = "GUEST.elf",
    .summary = "show entry point, segments, version note and the version verdict (no KVM)",
    .details = "Exits 0 when this host accepts the guest under the policy, else with the\n"
               "verdict's code (5 version mismatch, 6 no note under --require-note).\n",
    .min_pos = 1, .max_pos = 1,
    .opts = { CLI_OPTS_COMMON },
    .run = inspect,
};
