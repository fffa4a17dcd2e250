/* names.c - the one rule for function names and signatures, used by guest
 * registration, host functions and snapshot parsing alike. */
#include "internal.h"

bool sbx_valid_func_name(const char *name, size_t len)
{
    if (!name || len == 0 || len > SBX_MAX_NAME)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_';
        if (!ok)
            return false;
    }
    return true;
}

bool sbx_valid_signature(unsigned ret, unsigned nargs, const uint8_t *args)
{
    if (ret >= SBX_T_COUNT_ || nargs > SBX_MAX_ARGS)
        return false;
    for (unsigned a = 0; a < nargs; a++)
        if (args[a] == SBX_T_VOID || args[a] >= SBX_T_COUNT_)
            return false;
    return true;
}
