/* opts.c - the one option parser of every subcommand (getopt_long on the
 * command's table, as kvmtool's parse-options does), and help made from the
 * same table, so an option and its help cannot drift apart.
 *
 * Options may come anywhere (GNU permutation); `--` ends them. A guest
 * argument that begins with '-' (a negative number, "-x") must therefore
 * come after `--`: `snapbox call f.snap neg -- -5`. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_set_json(struct cli *c, const char *val)
{
    (void)val;
    c->json = true;
    return 0;
}

static const char *const policy_names[] = {
    [SBX_VERSION_EXACT] = "exact", [SBX_VERSION_RELAXED] = "relaxed", [SBX_VERSION_ABI] = "abi",
};

const char *cli_policy_name(enum sbx_version_policy p)
{
    return (unsigned)p < sizeof policy_names / sizeof policy_names[0] ? policy_names[p] : "?";
}

int cli_set_policy(struct cli *c, const char *val)
{
    for (size_t i = 0; i < sizeof policy_names / sizeof policy_names[0]; i++)
        if (!strcmp(val, policy_names[i])) {
            c->policy = (enum sbx_version_policy)i;
            return 0;
        }
    return cli_usage(c, "--policy wants exact, relaxed or abi, not '%s'", val);
}

int cli_set_relaxed(struct cli *c, const char *val)
{
    (void)val;
    c->policy = SBX_VERSION_RELAXED;
    return 0;
}

int cli_set_require_note(struct cli *c, const char *val)
{
    (void)val;
    c->require_note = true;
    return 0;
}

bool cli_parse_size(const char *text, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(text, &end, 0);
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k') shift = 10, end++;
    else if (*end == 'M' || *end == 'm') shift = 20, end++;
    else if (*end == 'G' || *end == 'g') shift = 30, end++;
    if (end == text || *end || strchr(text, '-') || v > (UINT64_MAX >> shift))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

int cli_set_mem(struct cli *c, const char *val)
{
    if (!cli_parse_size(val, &c->mem_size))
        return cli_usage(c, "bad --mem size '%s'", val);
    return 0;
}

int cli_set_stack(struct cli *c, const char *val)
{
    if (!cli_parse_size(val, &c->stack_size))
        return cli_usage(c, "bad --stack size '%s'", val);
    return 0;
}

int cli_set_xchg(struct cli *c, const char *val)
{
    if (!cli_parse_size(val, &c->xchg_size))
        return cli_usage(c, "bad --xchg size '%s'", val);
    return 0;
}

int cli_set_out(struct cli *c, const char *val)
{
    c->out = val;
    return 0;
}

int cli_set_deadline(struct cli *c, const char *val)
{
    uint64_t ms;
    if (!cli_parse_size(val, &ms) || ms == 0 || ms > UINT32_MAX)
        return cli_usage(c, "bad --deadline '%s' (milliseconds, 1 or more)", val);
    c->deadline_ms = (uint32_t)ms;
    return 0;
}

static const struct cli_opt help_opt = { "help", 'h', NULL, "show this help and exit", NULL };

static const struct cli_opt *find_opt(const struct cli_cmd *cmd, int key)
{
    for (const struct cli_opt *o = cmd->opts; o->name; o++)
        if (o->key == key)
            return o;
    return key == 'h' ? &help_opt : NULL;
}

/* getopt_long's tables from the command's. The leading ':' makes a missing
 * value its own case (':'), so the message can say so. */
static void getopt_tables(const struct cli_cmd *cmd, struct option *longs, char *shorts)
{
    size_t n = 0, s = 0;
    shorts[s++] = ':';
    shorts[s++] = 'h';
    longs[n++] = (struct option){ "help", no_argument, NULL, 'h' };
    for (const struct cli_opt *o = cmd->opts; o->name; o++) {
        longs[n++] = (struct option){ o->name, o->arg ? required_argument : no_argument, NULL,
                                      o->key };
        if (o->key < 128) {
            shorts[s++] = (char)o->key;
            if (o->arg)
                shorts[s++] = ':';
        }
    }
    longs[n] = (struct option){ 0 };
    shorts[s] = '\0';
}

/* The error must be in JSON if --json is anywhere before `--`, even when the
 * bad option comes before it. */
static void prescan_json(struct cli *c, int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--json"))
            c->json = true;
}

/* "-o" or "--name", as the user would write it. */
static const char *opt_label(const struct cli_opt *o, char buf[80])
{
    if (o->key < 128)
        snprintf(buf, 80, "-%c", o->key);
    else
        snprintf(buf, 80, "--%s", o->name);
    return buf;
}

static int bad_option(struct cli *c, char **argv, int key)
{
    const struct cli_opt *o = find_opt(c->cmd, optopt);
    const char *text = argv[optind - 1];
    /* run and call take guest arguments, which may begin with '-' */
    const char *hint = c->cmd->max_pos == 2 + SBX_MAX_ARGS
                       ? " (a guest argument that begins with '-' goes after '--': FUNC -- ARG...)"
                       : "";
    char label[80];
    if (key == ':' && o)
        return cli_usage(c, "option %s needs a value (%s)", opt_label(o, label), o->arg);
    if (o && optopt >= 128)
        return cli_usage(c, "option '--%s' takes no value", o->name);
    if (optopt > 0 && optopt < 128 && strlen(text) > 2) /* in a group: -xyz */
        return cli_usage(c, "unknown option '-%c' in '%s'%s", optopt, text, hint);
    if (optopt > 0 && optopt < 128)
        return cli_usage(c, "unknown option '-%c'%s", optopt, hint);
    return cli_usage(c, "unknown or ambiguous option '%s'%s", text, hint);
}

static int positionals(struct cli *c, int argc, char **argv)
{
    c->pos = argv + optind;
    c->npos = argc - optind;
    if (c->npos < c->cmd->min_pos)
        return cli_usage(c, "missing arguments: %s", c->cmd->synopsis);
    if (c->npos > c->cmd->max_pos && c->cmd->max_pos == 2 + SBX_MAX_ARGS)
        return cli_usage(c, "too many arguments: a guest function takes at most %u",
                         SBX_MAX_ARGS);
    if (c->npos > c->cmd->max_pos)
        return cli_usage(c, "too many arguments, from '%s' on", c->pos[c->cmd->max_pos]);
    return 0;
}

int cli_parse(struct cli *c, int argc, char **argv)
{
    struct option longs[CLI_OPTS_MAX + 2];
    char shorts[2 * CLI_OPTS_MAX + 4];
    getopt_tables(c->cmd, longs, shorts);
    prescan_json(c, argc, argv);
    optind = 0; /* glibc: start afresh */
    opterr = 0; /* the messages are ours, in text or JSON */
    int key;
    while ((key = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
        if (key == 'h') {
            cli_print_help(stdout, c->cmd);
            c->help = true;
            return EXIT_OK_;
        }
        const struct cli_opt *o = key == '?' || key == ':' ? NULL : find_opt(c->cmd, key);
        /* `--requests --json`: the value was forgotten, not "--json" meant */
        if (o && o->arg && !strncmp(optarg, "--", 2)) {
            char label[80];
            return cli_usage(c, "option %s needs a value (%s), not the option '%s'",
                             opt_label(o, label), o->arg, optarg);
        }
        int rc = o ? o->set(c, optarg) : bad_option(c, argv, key);
        if (rc)
            return rc;
    }
    return positionals(c, argc, argv);
}

void cli_print_help(FILE *f, const struct cli_cmd *cmd)
{
    fprintf(f, "usage: snapbox %s [OPTION...] %s\n\n%s\n\n%s\noptions:\n", cmd->name,
            cmd->synopsis, cmd->summary, cmd->details);
    for (const struct cli_opt *o = cmd->opts; ; o++) {
        if (!o->name)
            o = &help_opt;
        char left[80];
        if (o->key < 128)
            snprintf(left, sizeof left, "-%c, --%s", o->key, o->name);
        else
            snprintf(left, sizeof left, "    --%s", o->name);
        int pad = 26 - (int)strlen(left) - (o->arg != NULL);
        fprintf(f, "  %s%s%-*s %s\n", left, o->arg ? " " : "", pad > 0 ? pad : 0,
                o->arg ? o->arg : "", o->help);
        if (o == &help_opt)
            break;
    }
    fputs("\nexit codes: see `snapbox help`\n", f);
}
