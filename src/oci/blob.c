/* blob.c - SHA-256 digests (libcrypto) and the content-addressed cache:
 * DIR/blobs/sha256/HEX, each entry checked against its digest before it is
 * named, so the cache holds only verified blobs. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci.h"

#define OCI_READ_CHUNK (1u << 20)

static void digest_text(const unsigned char *md, char out[SBX_OCI_DIGEST_MAX])
{
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < 32; i++) {
        out[7 + 2 * i] = hex[md[i] >> 4];
        out[8 + 2 * i] = hex[md[i] & 15];
    }
    out[7 + 64] = '\0';
}

static int digest_final(EVP_MD_CTX *md, char out[SBX_OCI_DIGEST_MAX], struct sbx_diag *diag)
{
    unsigned char bin[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (EVP_DigestFinal_ex(md, bin, &len) != 1 || len != 32)
        return sbx_fail(diag, SBX_E_NOMEM, "SHA-256 failed (libcrypto)");
    digest_text(bin, out);
    return 0;
}

int oci_digest_mem(const void *p, size_t len, char out[SBX_OCI_DIGEST_MAX], struct sbx_diag *diag)
{
    unsigned char bin[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (EVP_Digest(p, len, bin, &n, EVP_sha256(), NULL) != 1 || n != 32)
        return sbx_fail(diag, SBX_E_NOMEM, "SHA-256 failed (libcrypto)");
    digest_text(bin, out);
    return 0;
}

int oci_digest_fd(int fd, const char *path, char out[SBX_OCI_DIGEST_MAX], uint64_t *size,
                  struct sbx_diag *diag)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t *buf = malloc(OCI_READ_CHUNK);
    int rc = SBX_E_NOMEM;
    uint64_t off = 0;
    if (!md || !buf || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        sbx_fail(diag, rc, "%s: out of memory for SHA-256", path);
        goto out;
    }
    for (;;) {
        ssize_t n = pread(fd, buf, OCI_READ_CHUNK, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = sbx_fail(diag, SBX_E_IO, "%s: read failed: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        EVP_DigestUpdate(md, buf, (size_t)n);
        off += (uint64_t)n;
    }
    *size = off;
    rc = digest_final(md, out, diag);
out:
    free(buf);
    EVP_MD_CTX_free(md);
    return rc;
}

static int mkdirs(char *path, struct sbx_diag *diag)
{
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        int r = mkdir(path, 0700);
        int e = errno;
        *p = c;
        if (r < 0 && e != EEXIST)
            return sbx_fail(diag, SBX_E_IO, "cache %s: cannot create the directory: %s", path,
                            strerror(e));
        if (!c)
            return 0;
    }
}

int oci_cache_dir(const struct sbx_oci_opts *o, char *dir, size_t n, struct sbx_diag *diag)
{
    const char *env = getenv("SNAPBOX_CACHE"), *xdg = getenv("XDG_CACHE_HOME"),
               *home = getenv("HOME");
    int w;
    if (o->cache_dir && *o->cache_dir)
        w = snprintf(dir, n, "%s", o->cache_dir);
    else if (env && *env)
        w = snprintf(dir, n, "%s", env);
    else if (xdg && *xdg == '/')
        w = snprintf(dir, n, "%s/snapbox", xdg);
    else if (home && *home)
        w = snprintf(dir, n, "%s/.cache/snapbox", home);
    else
        return sbx_fail(diag, SBX_E_INVAL, "no cache directory: set SNAPBOX_CACHE, "
                        "XDG_CACHE_HOME or HOME, or give --cache");
    if (w < 0 || (size_t)w + 80 >= n)
        return sbx_fail(diag, SBX_E_INVAL, "cache directory path too long");
    char sub[SBX_OCI_PATH_MAX];
    snprintf(sub, sizeof sub, "%s/blobs/sha256", dir);
    return mkdirs(sub, diag);
}

int oci_cache_path(const char *dir, const char *digest, char *path, size_t n,
                   struct sbx_diag *diag)
{
    if (!oci_digest_valid(digest))
        return sbx_fail(diag, SBX_E_REGISTRY, "'%.80s' is not a sha256 digest", digest);
    if ((size_t)snprintf(path, n, "%s/blobs/sha256/%s", dir, digest + 7) >= n)
        return sbx_fail(diag, SBX_E_INVAL, "cache path too long");
    return 0;
}

/* Whether the cache holds the blob at path with that size. */
static bool cached(const char *path, uint64_t size)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == size;
}

int oci_blob_fetch(struct oci_client *cl, const char *cache, const char *digest, uint64_t size,
                   const char *what, char *path, size_t n, struct sbx_diag *diag)
{
    int rc = oci_cache_path(cache, digest, path, n, diag);
    if (rc)
        return rc;
    if (cached(path, size))
        return 1;
    char url[OCI_URL_MAX], label[OCI_LABEL_MAX], got[SBX_OCI_DIGEST_MAX];
    snprintf(url, sizeof url, "/v2/%s/blobs/%s", cl->ref.repo, digest);
    snprintf(label, sizeof label, "%s blob %s of %s", what, digest, cl->ref.text);
    struct sbx_atomic a;
    struct oci_sink sk = { .max = size, .md = EVP_MD_CTX_new() };
    struct oci_resp resp = { 0 };
    if (!sk.md)
        return sbx_fail(diag, SBX_E_NOMEM, "%s: out of memory", label);
    if ((rc = sbx_atomic_begin(&a, path, 0644, diag)))
        goto out;
    sk.fd = a.fd;
    struct oci_req q = { .method = "GET", .url = url, .body_fd = -1, .sink = &sk, .what = label,
                         .progress = what, .progress_total = size, .max_body = 64 << 10 };
    if ((rc = oci_request(cl, &q, &resp, diag)) == 0 && resp.status != 200)
        rc = oci_status_fail(cl, &q, &resp, diag);
    if (rc == 0 && sk.written != size)
        rc = sbx_fail(diag, SBX_E_DIGEST, "%s: digest mismatch: the registry sent %llu bytes, "
                      "the manifest says %llu", label, (unsigned long long)sk.written,
                      (unsigned long long)size);
    if (rc == 0 && (rc = digest_final(sk.md, got, diag)) == 0 && strcmp(got, digest))
        rc = sbx_fail(diag, SBX_E_DIGEST, "%s: digest mismatch: the bytes received hash to %s: "
                      "the registry's copy is corrupt (nothing was kept)", label, got);
    if (rc == 0)
        rc = sbx_atomic_commit(&a, diag);
    else
        sbx_atomic_abort(&a);
out:
    oci_resp_free(&resp);
    EVP_MD_CTX_free(sk.md);
    return rc;
}

int oci_cache_put(const char *cache, const char *digest, const void *p, size_t len,
                  struct sbx_diag *diag)
{
    char path[SBX_OCI_PATH_MAX];
    int rc = oci_cache_path(cache, digest, path, sizeof path, diag);
    if (rc || cached(path, len))
        return rc;
    struct sbx_atomic a;
    if ((rc = sbx_atomic_begin(&a, path, 0644, diag)))
        return rc;
    if (sbx_write_all(a.fd, p, len) < 0) {
        rc = sbx_fail(diag, SBX_E_IO, "%s: write failed: %s", path, strerror(errno));
        sbx_atomic_abort(&a);
        return rc;
    }
    return sbx_atomic_commit(&a, diag);
}

int oci_copy_file(const char *src, const char *dst, struct sbx_diag *diag)
{
    int in;
    uint64_t size;
    int rc = sbx_open_regular(src, UINT64_MAX, &in, &size, diag);
    if (rc)
        return rc;
    struct sbx_atomic a;
    uint8_t *buf = malloc(OCI_READ_CHUNK);
    if (!buf) {
        close(in);
        return sbx_fail(diag, SBX_E_NOMEM, "%s: out of memory", dst);
    }
    if ((rc = sbx_atomic_begin(&a, dst, 0644, diag)))
        goto out;
    for (uint64_t off = 0; off < size && rc == 0;) {
        size_t n = size - off < OCI_READ_CHUNK ? (size_t)(size - off) : OCI_READ_CHUNK;
        if (sbx_pread_all(in, buf, n, (off_t)off) < 0)
            rc = sbx_fail(diag, SBX_E_IO, "%s: read failed: %s", src, strerror(errno));
        else if (sbx_write_all(a.fd, buf, n) < 0)
            rc = sbx_fail(diag, SBX_E_IO, "%s: write failed: %s", dst, strerror(errno));
        off += n;
    }
    if (rc == 0)
        rc = sbx_atomic_commit(&a, diag);
    else
        sbx_atomic_abort(&a);
out:
    free(buf);
    close(in);
    return rc;
}
