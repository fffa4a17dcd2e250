/* ref.c - OCI references: [oci://]host[:port]/repo[:tag][@sha256:HEX]. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "oci.h"

#define OCI_SCHEME "oci://"

bool sbx_oci_is_ref(const char *text)
{
    return text && !strncmp(text, OCI_SCHEME, strlen(OCI_SCHEME));
}

bool oci_digest_valid(const char *d)
{
    if (strncmp(d, "sha256:", 7) || strlen(d) != 7 + 64)
        return false;
    for (const char *p = d + 7; *p; p++)
        if (!isdigit((unsigned char)*p) && !(*p >= 'a' && *p <= 'f'))
            return false;
    return true;
}

/* The distribution spec's repository grammar, simplified: lowercase
 * components of [a-z0-9] joined by one of . _ __ - and separated by /. */
static bool repo_valid(const char *s, size_t len)
{
    if (!len || len >= OCI_REPO_MAX || !isalnum((unsigned char)s[0]) ||
        !isalnum((unsigned char)s[len - 1]))
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        bool sep = ch == '.' || ch == '_' || ch == '-' || ch == '/';
        if (!sep && !isdigit((unsigned char)ch) && !(ch >= 'a' && ch <= 'z'))
            return false;
        if (ch == '/' && (s[i + 1] == '/' || !isalnum((unsigned char)s[i + 1])))
            return false;
    }
    return true;
}

static bool tag_valid(const char *s, size_t len)
{
    if (!len || len > OCI_TAG_MAX || !(isalnum((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
            return false;
    return true;
}

/* host[:port], or [v6][:port]: letters, digits, . - and a port of digits. */
static bool host_valid(const char *s, size_t len)
{
    if (!len || len >= OCI_HOST_MAX)
        return false;
    size_t i = 0;
    if (s[0] == '[') {
        for (i = 1; i < len && s[i] != ']'; i++)
            if (!isxdigit((unsigned char)s[i]) && s[i] != ':' && s[i] != '.')
                return false;
        if (i++ == len)
            return false;
    } else {
        for (; i < len && s[i] != ':'; i++)
            if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '-')
                return false;
        if (i == 0)
            return false;
    }
    if (i == len)
        return true;
    if (s[i++] != ':' || i == len || len - i > 5)
        return false;
    for (; i < len; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

bool oci_host_loopback(const char *host)
{
    char name[OCI_HOST_MAX];
    snprintf(name, sizeof name, "%s", host);
    if (name[0] == '[')
        return !strncmp(name, "[::1]", 5) && (name[5] == '\0' || name[5] == ':');
    name[strcspn(name, ":")] = '\0';
    struct in_addr a;
    /* a numeric address in 127.0.0.0/8, not a name that begins with "127." */
    if (inet_pton(AF_INET, name, &a) == 1)
        return (ntohl(a.s_addr) >> 24) == 127;
    return !strcmp(name, "localhost");
}

int oci_ref_parse(const char *text, struct oci_ref *r, struct sbx_diag *diag)
{
    memset(r, 0, sizeof *r);
    if (!text)
        return sbx_fail(diag, SBX_E_INVAL, "no registry reference");
    const char *s = sbx_oci_is_ref(text) ? text + strlen(OCI_SCHEME) : text;
    if (strlen(s) >= sizeof r->text)
        return sbx_fail(diag, SBX_E_INVAL, "registry reference of %zu bytes is too long",
                        strlen(s));
    snprintf(r->text, sizeof r->text, "%s", s);
    const char *slash = strchr(s, '/');
    if (!slash || !host_valid(s, (size_t)(slash - s)))
        return sbx_fail(diag, SBX_E_INVAL, "'%s': not a registry reference: want "
                        "HOST[:PORT]/REPO[:TAG] or HOST[:PORT]/REPO@sha256:DIGEST", text);
    memcpy(r->host, s, (size_t)(slash - s));
    const char *name = slash + 1, *at = strchr(name, '@');
    size_t name_len = at ? (size_t)(at - name) : strlen(name);
    if (at) {
        if (!oci_digest_valid(at + 1))
            return sbx_fail(diag, SBX_E_INVAL, "'%s': the digest must be sha256: and 64 "
                            "lowercase hex digits", text);
        snprintf(r->digest, sizeof r->digest, "%s", at + 1);
    }
    /* a tag follows the last ':' after the last '/' */
    const char *last_slash = memrchr(name, '/', name_len);
    const char *colon = memchr(last_slash ? last_slash : name, ':',
                               name_len - (size_t)((last_slash ? last_slash : name) - name));
    size_t repo_len = colon ? (size_t)(colon - name) : name_len;
    if (!repo_valid(name, repo_len))
        return sbx_fail(diag, SBX_E_INVAL, "'%s': bad repository name '%.*s' (lowercase letters, "
                        "digits, and . _ - / between them)", text, (int)repo_len, name);
    memcpy(r->repo, name, repo_len);
    if (colon) {
        size_t tag_len = name_len - repo_len - 1;
        if (!tag_valid(colon + 1, tag_len))
            return sbx_fail(diag, SBX_E_INVAL, "'%s': bad tag '%.*s' (at most %u of A-Z a-z "
                            "0-9 . _ -)", text, (int)tag_len, colon + 1, OCI_TAG_MAX);
        memcpy(r->tag, colon + 1, tag_len);
    } else if (!at) {
        snprintf(r->tag, sizeof r->tag, "latest");
    }
    r->loopback = oci_host_loopback(r->host);
    return 0;
}
