/* note.c - parse ELF notes and pick out the snapbox version note. */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "sbx_abi.h"

#define NOTE_HEADER_SIZE 12u

static size_t round_up(size_t v, size_t align)
{
    return (v + align - 1) & ~(align - 1);
}

static uint32_t load_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static int decode_version(const uint8_t *desc, struct sbx_version *out, char *why, size_t why_len)
{
    struct sbx_note_version_desc d;
    memcpy(&d, desc, sizeof d);
    if (!memchr(d.version, '\0', sizeof d.version)) {
        snprintf(why, why_len, "version string is not NUL-terminated within %u bytes",
                 (unsigned)sizeof d.version);
        return SBX_E_NOTE;
    }
    char expect[sizeof d.version + 32];
    snprintf(expect, sizeof expect, "%u.%u.%u", d.major, d.minor, d.patch);
    if (strcmp(expect, d.version) != 0) {
        snprintf(why, why_len, "version string '%.32s' disagrees with numeric version %s",
                 d.version, expect);
        return SBX_E_NOTE;
    }
    *out = (struct sbx_version){ .major = d.major, .minor = d.minor, .patch = d.patch, .abi = d.abi };
    /* the API's string size is its own: copy, do not assume the ABI's */
    snprintf(out->string, sizeof out->string, "%s", d.version);
    return 1;
}

int sbx_note_parse(const uint8_t *buf, size_t len, size_t align, struct sbx_version *out,
                   char *why, size_t why_len)
{
    size_t off = 0;
    while (len - off >= NOTE_HEADER_SIZE) {
        uint32_t namesz = load_u32(buf + off);
        uint32_t descsz = load_u32(buf + off + 4);
        uint32_t type = load_u32(buf + off + 8);
        size_t left = len - off - NOTE_HEADER_SIZE;
        size_t name_span = round_up(namesz, align);
        if (name_span > left) {
            snprintf(why, why_len, "note at offset %zu: n_namesz %u runs past its end (%zu bytes left)",
                     off, namesz, left);
            return SBX_E_NOTE;
        }
        size_t desc_off = off + NOTE_HEADER_SIZE + name_span;
        if (descsz > len - desc_off) {
            snprintf(why, why_len, "note at offset %zu: n_descsz %u runs past its end (%zu bytes left)",
                     off, descsz, len - desc_off);
            return SBX_E_NOTE;
        }
        const uint8_t *name = buf + off + NOTE_HEADER_SIZE;
        if (namesz == SBX_NOTE_OWNER_SIZE && memcmp(name, SBX_NOTE_OWNER, SBX_NOTE_OWNER_SIZE) == 0 &&
            type == SBX_NOTE_TYPE_VERSION) {
            if (descsz != SBX_NOTE_DESC_SIZE) {
                snprintf(why, why_len, "snapbox version note has n_descsz %u, expected %u", descsz,
                         (unsigned)SBX_NOTE_DESC_SIZE);
                return SBX_E_NOTE;
            }
            return decode_version(buf + desc_off, out, why, why_len);
        }
        size_t desc_span = round_up(descsz, align);
        off = desc_span > len - desc_off ? len : desc_off + desc_span;
    }
    return 0;
}
