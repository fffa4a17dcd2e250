/* config.c - the artifact's config blob: what the snapshot's header says,
 * as JSON (docs/oci.md), so a pull judges a snapshot before fetching it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oci.h"

static json_t *version_json(const struct sbx_version *v)
{
    return json_pack("{s:s, s:I, s:I, s:I, s:I}", "version", v->string, "major",
                     (json_int_t)v->major, "minor", (json_int_t)v->minor, "patch",
                     (json_int_t)v->patch, "abi", (json_int_t)v->abi);
}

static json_t *functions_json(const struct sbx_snapshot *snap, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        SBX_OPTS(sbx_func_info, fi);
        json_t *args = json_array();
        if (!args || sbx_snapshot_function(snap, i, &fi, NULL)) {
            json_decref(args);
            json_decref(arr);
            return NULL;
        }
        for (size_t a = 0; a < fi.nargs; a++)
            json_array_append_new(args, json_string(sbx_type_name(fi.args[a])));
        json_array_append_new(arr, json_pack("{s:s, s:o, s:s}", "name", fi.name, "args", args,
                                             "ret", sbx_type_name(fi.ret)));
    }
    return arr;
}

int oci_config_make(const struct sbx_snapshot *snap, char **out, size_t *len,
                    struct sbx_diag *diag)
{
    struct sbx_snap_facts f;
    sbx_snap_facts_of(snap->meta, &f);
    SBX_OPTS(sbx_snapshot_info, i);
    int rc = sbx_snapshot_info(snap, &i, diag);
    if (rc)
        return rc;
    char xxh[17];
    snprintf(xxh, sizeof xxh, "%016llx", (unsigned long long)i.guest_elf_hash);
    json_t *root = json_pack(
        "{s:I, s:o, s:o, s:I, s:{s:s%, s:[I,I,I,I], s:I}, s:I, s:I, s:I, s:s, s:s, s:o}",
        "format", (json_int_t)f.format, "writer", version_json(&f.writer), "guest",
        f.guest_has_note ? version_json(&f.guest) : json_null(), "layout_abi",
        (json_int_t)f.layout_abi, "cpu", "vendor", f.cpu_vendor, sizeof f.cpu_vendor,
        "features", (json_int_t)f.cpuid_features[0], (json_int_t)f.cpuid_features[1],
        (json_int_t)f.cpuid_features[2], (json_int_t)f.cpuid_features[3], "xcr0",
        (json_int_t)f.xcr0, "memory_size", (json_int_t)i.mem_size, "file_size",
        (json_int_t)i.file_size, "nonzero_pages", (json_int_t)i.nonzero_pages,
        "compression", i.hc ? "lz4hc" : "lz4", "guest_elf_xxh3", xxh, "functions",
        functions_json(snap, i.nfuncs));
    if (!root)
        return sbx_fail(diag, SBX_E_NOMEM, "%s: out of memory for the OCI config", snap->path);
    *out = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    if (!*out)
        return sbx_fail(diag, SBX_E_NOMEM, "%s: out of memory for the OCI config", snap->path);
    *len = strlen(*out);
    return 0;
}

/* An unsigned 32-bit field of o, or false. */
static bool u32_of(json_t *o, const char *key, uint32_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX)
        return false;
    *out = (uint32_t)json_integer_value(v);
    return true;
}

static bool version_of(json_t *o, struct sbx_version *v)
{
    const char *s = json_string_value(json_object_get(o, "version"));
    if (!json_is_object(o) || !s || strlen(s) >= sizeof v->string || !u32_of(o, "major", &v->major) ||
        !u32_of(o, "minor", &v->minor) || !u32_of(o, "patch", &v->patch) ||
        !u32_of(o, "abi", &v->abi))
        return false;
    snprintf(v->string, sizeof v->string, "%s", s);
    return true;
}

static bool cpu_of(json_t *cpu, struct sbx_snap_facts *f)
{
    json_t *vendor = json_object_get(cpu, "vendor"), *feat = json_object_get(cpu, "features"),
           *xcr0 = json_object_get(cpu, "xcr0");
    if (!json_is_string(vendor) || json_string_length(vendor) != sizeof f->cpu_vendor ||
        json_array_size(feat) != 4 || !json_is_integer(xcr0) || json_integer_value(xcr0) < 0)
        return false;
    memcpy(f->cpu_vendor, json_string_value(vendor), sizeof f->cpu_vendor);
    for (size_t i = 0; i < 4; i++) {
        json_t *w = json_array_get(feat, i);
        if (!json_is_integer(w) || json_integer_value(w) < 0 || json_integer_value(w) > UINT32_MAX)
            return false;
        f->cpuid_features[i] = (uint32_t)json_integer_value(w);
    }
    f->xcr0 = (uint64_t)json_integer_value(xcr0);
    return true;
}

int oci_config_facts(const uint8_t *p, size_t len, const char *what, struct sbx_snap_facts *f,
                     struct sbx_diag *diag)
{
    json_error_t err;
    json_t *root = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &err);
    memset(f, 0, sizeof *f);
    if (!root)
        return sbx_fail(diag, SBX_E_REGISTRY, "%s: the config is not JSON: %s", what, err.text);
    json_t *guest = json_object_get(root, "guest");
    f->guest_has_note = !json_is_null(guest);
    const char *bad = !json_is_object(root) ? "not an object"
                      : !u32_of(root, "format", &f->format) ? "\"format\""
                      : !u32_of(root, "layout_abi", &f->layout_abi) ? "\"layout_abi\""
                      : !version_of(json_object_get(root, "writer"), &f->writer) ? "\"writer\""
                      : !guest || (f->guest_has_note && !version_of(guest, &f->guest))
                          ? "\"guest\""
                      : !cpu_of(json_object_get(root, "cpu"), f) ? "\"cpu\"" : NULL;
    json_decref(root);
    if (bad)
        return sbx_fail(diag, SBX_E_REGISTRY, "%s: the config is not a snapbox snapshot config "
                        "(%s is missing or malformed)", what, bad);
    return 0;
}
