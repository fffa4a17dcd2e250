/* fuzz_note.c - the version-note parser on arbitrary note areas. The first
 * byte picks the alignment (4 or 8), as PT_NOTE's p_align would. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct sbx_version v;
    char why[256];
    int rc = sbx_note_parse(data + 1, size - 1, data[0] & 1 ? 8 : 4, &v, why, sizeof why);
    if (rc == 1 && strnlen(v.string, sizeof v.string) == sizeof v.string)
        abort(); /* an accepted version string is always terminated */
    if (rc < 0 && strnlen(why, sizeof why) == sizeof why)
        abort();
    return 0;
}
