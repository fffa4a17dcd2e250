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

bool sbx_valid_signature(enum sbx_type ret, size_t nargs, const enum sbx_type *args)
{
    if ((unsigned)ret >= SBX_T_COUNT_ || nargs > SBX_MAX_ARGS || (nargs && !args))
        return false;
    for (size_t a = 0; a < nargs; a++)
        if (args[a] == SBX_T_VOID || (unsigned)args[a] >= SBX_T_COUNT_)
            return false;
    return true;
}
