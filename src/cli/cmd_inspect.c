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

/* JSON string body: the path may hold any byte. */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
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
    printf("policy:    %s\n", policy);
    printf("verdict:   %s\n", verdict->code ? "rejected" : "accepted");
    if (verdict->code)
        printf("reason:    %s\n", verdict->msg);
}

static void print_json(const struct sbx_guest *g, const struct sbx_version *host,
                       enum sbx_note_source src, const struct sbx_version *gv,
                       const char *policy, const struct sbx_diag *verdict)
{
    printf("{\"file\": ");
    json_str(sbx_guest_path(g));
    printf(", \"entry\": %llu, \"segments\": [", (unsigned long long)sbx_guest_entry(g));
    for (size_t i = 0; i < sbx_guest_segment_count(g); i++) {
        const struct sbx_segment *s = sbx_guest_segment(g, i);
        char p[4];
        perms(s->flags, p);
        printf("%s{\"vaddr\": %llu, \"memsz\": %llu, \"filesz\": %llu, \"offset\": %llu, "
               "\"flags\": \"%s\"}",
               i ? ", " : "", (unsigned long long)s->vaddr, (unsigned long long)s->memsz,
               (unsigned long long)s->filesz, (unsigned long long)s->offset, p);
    }
    printf("], \"note\": \"%s\", \"guest_version\": ", note_where(src));
    if (src != SBX_NOTE_NONE)
        printf("\"%s\", \"guest_abi\": %u", gv->string, gv->abi);
    else
        printf("null, \"guest_abi\": null");
    printf(", \"host_version\": \"%s\", \"host_abi\": %u, \"policy\": \"%s\", \"verdict\": \"%s\"",
           host->string, host->abi, policy, verdict->code ? "rejected" : "accepted");
    if (verdict->code) {
        printf(", \"reason\": ");
        json_str(verdict->msg);
    }
    printf("}\n");
}

int cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    bool json = false;
    SBX_OPTS(sbx_load_opts, opts, .log = cli_log);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!strcmp(argv[i], "--require-note"))
            opts.require_note = true;
        else if (!strcmp(argv[i], "--relaxed"))
            opts.policy = SBX_VERSION_RELAXED;
        else if (!path && argv[i][0] != '-')
            path = argv[i];
        else {
            fprintf(stderr, "snapbox inspect: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: snapbox inspect GUEST.elf [--require-note] [--relaxed] [--json]\n");
        return EXIT_USAGE;
    }
    struct sbx_diag diag = { 0 };
    struct sbx_guest *g = NULL;
    if (sbx_guest_open(path, &g, &diag))
        return cli_report(&diag);
    struct sbx_version host, gv;
    sbx_host_version(&host);
    enum sbx_note_source src = sbx_guest_note(g, &gv);
    struct sbx_diag verdict = { 0 };
    sbx_guest_check_version(g, &opts, &verdict);
    const char *policy = opts.policy == SBX_VERSION_RELAXED ? "relaxed" : "exact";
    if (json)
        print_json(g, &host, src, &gv, policy, &verdict);
    else
        print_text(g, &host, src, &gv, policy, &verdict);
    sbx_guest_free(g);
    return verdict.code ? cli_report(&verdict) : EXIT_OK_;
}
