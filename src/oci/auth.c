/* auth.c - registry credentials (options, environment, Docker's config.json)
 * and the answer to a 401's WWW-Authenticate challenge: Basic, or a Bearer
 * token fetched from the challenge's realm. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "oci.h"

#define OCI_MAX_DOCKER_CONFIG (UINT64_C(1) << 20)
#define OCI_MAX_TOKEN_REPLY (UINT64_C(64) << 10)

static int set_creds(struct oci_client *cl, const char *user, const char *pass,
                     const char *source, struct sbx_diag *diag)
{
    if (strlen(user) >= sizeof cl->user || strlen(pass) >= sizeof cl->pass || strchr(user, ':'))
        return sbx_fail(diag, SBX_E_INVAL, "%s: the registry user name or password from %s is "
                        "too long or has a ':' in the name", cl->ref.text, source);
    snprintf(cl->user, sizeof cl->user, "%s", user);
    snprintf(cl->pass, sizeof cl->pass, "%s", pass);
    cl->cred_source = source;
    return 0;
}

/* An "auths" key names the host as "host", "https://host", "http://host/v1/"... */
static bool key_names_host(const char *key, const char *host)
{
    const char *k = strstr(key, "://");
    k = k ? k + 3 : key;
    size_t n = strlen(host);
    return !strncmp(k, host, n) && (k[n] == '\0' || k[n] == '/');
}

/* "auth" is base64 of "user:password". */
static int decode_auth(struct oci_client *cl, const char *b64, const char *source,
                       struct sbx_diag *diag)
{
    size_t len = strlen(b64);
    if (len == 0 || len % 4 || len > 2048)
        return sbx_fail(diag, SBX_E_INVAL, "%s: the \"auth\" entry for %s is not base64",
                        source, cl->ref.host);
    unsigned char out[1600];
    int n = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)len);
    if (n < 0)
        return sbx_fail(diag, SBX_E_INVAL, "%s: the \"auth\" entry for %s is not base64",
                        source, cl->ref.host);
    for (const char *p = b64 + len; p > b64 && p[-1] == '='; p--)
        n--; /* EVP_DecodeBlock counts the padding as zero bytes */
    out[n < 0 ? 0 : n] = '\0';
    char *colon = strchr((char *)out, ':');
    if (!colon || memchr(out, '\0', (size_t)n))
        return sbx_fail(diag, SBX_E_INVAL, "%s: the \"auth\" entry for %s is not "
                        "base64 of user:password", source, cl->ref.host);
    *colon = '\0';
    int rc = set_creds(cl, (char *)out, colon + 1, source, diag);
    explicit_bzero(out, sizeof out);
    return rc;
}

static int docker_config(struct oci_client *cl, struct sbx_diag *diag)
{
    char path[SBX_OCI_PATH_MAX];
    const char *dir = getenv("DOCKER_CONFIG"), *home = getenv("HOME");
    if (dir && *dir)
        snprintf(path, sizeof path, "%s/config.json", dir);
    else if (home && *home)
        snprintf(path, sizeof path, "%s/.docker/config.json", home);
    else
        return 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    struct sbx_diag ignored;
    if (sbx_read_file(path, OCI_MAX_DOCKER_CONFIG, &buf, &len, &ignored))
        return 0; /* none: anonymous access */
    json_error_t err;
    json_t *root = json_loadb((const char *)buf, len, 0, &err), *auths, *entry;
    int rc = 0;
    const char *key;
    if (!root) {
        rc = sbx_fail(diag, SBX_E_INVAL, "%s: not JSON: %s (line %d)", path, err.text, err.line);
        goto out;
    }
    auths = json_object_get(root, "auths");
    json_object_foreach(auths, key, entry) {
        if (!key_names_host(key, cl->ref.host))
            continue;
        const char *auth = json_string_value(json_object_get(entry, "auth"));
        const char *user = json_string_value(json_object_get(entry, "username"));
        const char *pass = json_string_value(json_object_get(entry, "password"));
        if (auth && *auth)
            rc = decode_auth(cl, auth, path, diag);
        else if (user && pass)
            rc = set_creds(cl, user, pass, path, diag);
        break;
    }
out:
    json_decref(root);
    free(buf);
    return rc;
}

int oci_auth_credentials(struct oci_client *cl, struct sbx_diag *diag)
{
    const char *user = getenv("SNAPBOX_REGISTRY_USER"), *pass = getenv("SNAPBOX_REGISTRY_PASSWORD");
    if (cl->o.username)
        return set_creds(cl, cl->o.username, cl->o.password ? cl->o.password : "", "the options",
                         diag);
    if (user && *user)
        return set_creds(cl, user, pass ? pass : "", "SNAPBOX_REGISTRY_USER", diag);
    return docker_config(cl, diag);
}

/* ---- challenges ---- */
bool oci_challenge_parse(const char *s, struct oci_challenge *ch)
{
    memset(ch, 0, sizeof *ch);
    size_t n = strcspn(s, " ");
    if (!n || n >= sizeof ch->scheme)
        return false;
    memcpy(ch->scheme, s, n);
    for (s += n; *s;) {
        while (*s == ' ' || *s == ',')
            s++;
        const char *eq = strchr(s, '=');
        if (!*s || !eq)
            break;
        char name[32] = "", val[1024] = "";
        snprintf(name, sizeof name, "%.*s", (int)(eq - s), s);
        s = eq + 1;
        size_t vl = 0;
        /* a value longer than val is cut, and the rest still read past */
        if (*s == '"') {
            for (s++; *s && *s != '"'; s++) {
                char c = *s == '\\' && s[1] ? *++s : *s;
                if (vl + 1 < sizeof val)
                    val[vl++] = c;
            }
            if (*s != '"')
                return false;
            s++;
        } else {
            for (; *s && *s != ',' && *s != ' '; s++)
                if (vl + 1 < sizeof val)
                    val[vl++] = *s;
        }
        char *dst = !strcasecmp(name, "realm") ? ch->realm : !strcasecmp(name, "service")
                    ? ch->service : !strcasecmp(name, "scope") ? ch->scope : NULL;
        size_t cap = dst == ch->realm ? sizeof ch->realm : dst == ch->service ?
                     sizeof ch->service : sizeof ch->scope;
        if (dst)
            snprintf(dst, cap, "%s", val);
    }
    return true;
}

/* "Authorization: SCHEME CRED" in a new string, or NULL. */
static char *authz_line(const char *scheme, const char *cred)
{
    size_t n = strlen(scheme) + strlen(cred) + 32;
    char *line = malloc(n);
    if (line)
        snprintf(line, n, "Authorization: %s %s", scheme, cred);
    return line;
}

/* The Basic header of the credentials, in *out. */
static int basic_line(const struct oci_client *cl, const char *what, char **out,
                      struct sbx_diag *diag)
{
    if (!cl->cred_source)
        return sbx_fail(diag, SBX_E_AUTH, "%s: the registry %s wants a user name and password: "
                        "set SNAPBOX_REGISTRY_USER and SNAPBOX_REGISTRY_PASSWORD, or log in "
                        "with docker login", what, cl->ref.host);
    char plain[520];
    unsigned char b64[700];
    int n = snprintf(plain, sizeof plain, "%s:%s", cl->user, cl->pass);
    EVP_EncodeBlock(b64, (const unsigned char *)plain, n);
    explicit_bzero(plain, sizeof plain);
    *out = authz_line("Basic", (const char *)b64);
    explicit_bzero(b64, sizeof b64);
    return *out ? 0 : sbx_fail(diag, SBX_E_NOMEM, "out of memory");
}

static void set_authz(struct oci_client *cl, char *line)
{
    if (cl->authz)
        explicit_bzero(cl->authz, strlen(cl->authz));
    free(cl->authz);
    cl->authz = line;
}

/* GET realm?service=..&scope=.. (with the Basic credentials, if any);
 * the reply is {"token": ...} or {"access_token": ...}. */
static int bearer(struct oci_client *cl, const struct oci_challenge *ch, const char *what,
                  struct sbx_diag *diag)
{
    /* credentials travel to the realm: plain HTTP only where the registry itself may use it */
    char realm_host[OCI_HOST_MAX] = "";
    if (!strncmp(ch->realm, "http://", 7))
        snprintf(realm_host, sizeof realm_host, "%.*s", (int)strcspn(ch->realm + 7, "/?#"),
                 ch->realm + 7);
    if (strncmp(ch->realm, "https://", 8) &&
        !(realm_host[0] && (oci_host_loopback(realm_host) || cl->o.insecure)))
        return sbx_fail(diag, SBX_E_REGISTRY, "%s: the registry's token realm '%.100s' is not "
                        "an https URL (plain http only on loopback or with --insecure)", what,
                        ch->realm);
    char scope[600], url[OCI_URL_MAX];
    if (ch->scope[0])
        snprintf(scope, sizeof scope, "%s", ch->scope);
    else
        snprintf(scope, sizeof scope, "repository:%s:%s", cl->ref.repo,
                 cl->push ? "pull,push" : "pull");
    char *svc = curl_easy_escape(cl->curl, ch->service, 0), *scp = curl_easy_escape(cl->curl, scope, 0);
    int rc = SBX_E_NOMEM;
    if (!svc || !scp) {
        sbx_fail(diag, rc, "out of memory");
        goto out;
    }
    snprintf(url, sizeof url, "%s%sservice=%s&scope=%s", ch->realm,
             strchr(ch->realm, '?') ? "&" : "?", svc, scp);
    char *creds = NULL;
    if (cl->cred_source && (rc = basic_line(cl, what, &creds, diag)))
        goto out;
    char twhat[160];
    snprintf(twhat, sizeof twhat, "token for %.100s", cl->ref.text);
    struct oci_req q = { .method = "GET", .url = url, .body_fd = -1, .what = twhat,
                         .max_body = OCI_MAX_TOKEN_REPLY, .no_challenge = true,
                         .authz = creds };
    struct oci_resp r = { 0 };
    if ((rc = oci_request(cl, &q, &r, diag)) == 0 && r.status != 200)
        rc = oci_status_fail(cl, &q, &r, diag);
    json_t *root = rc ? NULL : json_loadb((const char *)r.body.p, r.body.len, 0, NULL);
    const char *tok = json_string_value(json_object_get(root, "token"));
    if (!tok)
        tok = json_string_value(json_object_get(root, "access_token"));
    if (!rc && (!tok || !*tok || strlen(tok) > 8192 || strpbrk(tok, "\r\n")))
        rc = sbx_fail(diag, SBX_E_REGISTRY, "%s: the token service at %.200s sent no usable "
                      "token", what, ch->realm);
    char *line = rc ? NULL : authz_line("Bearer", tok);
    if (!rc && !line)
        rc = sbx_fail(diag, SBX_E_NOMEM, "out of memory");
    if (!rc)
        set_authz(cl, line);
    json_decref(root);
    oci_resp_free(&r);
    if (creds)
        explicit_bzero(creds, strlen(creds));
    free(creds);
out:
    curl_free(svc);
    curl_free(scp);
    return rc;
}

int oci_auth_answer(struct oci_client *cl, const char *challenge, const char *what,
                    struct sbx_diag *diag)
{
    struct oci_challenge ch;
    if (!oci_challenge_parse(challenge, &ch))
        return sbx_fail(diag, SBX_E_REGISTRY, "%s: cannot read the registry's challenge "
                        "'WWW-Authenticate: %.100s'", what, challenge);
    if (!strcasecmp(ch.scheme, "Basic")) {
        char *line = NULL;
        int rc = basic_line(cl, what, &line, diag);
        if (rc == 0)
            set_authz(cl, line);
        return rc;
    }
    if (!strcasecmp(ch.scheme, "Bearer"))
        return bearer(cl, &ch, what, diag);
    return sbx_fail(diag, SBX_E_AUTH, "%s: the registry wants '%.15s' authentication, which "
                    "snapbox does not speak (Basic, Bearer)", what, ch.scheme);
}
