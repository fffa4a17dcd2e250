/* libversion.c - the library's version at run time, to compare with the
 * SBX_VERSION_* macros a program was compiled against. */
#include "snapbox.h"

unsigned sbx_version_number(void)
{
    return SBX_VERSION_NUMBER;
}

const char *sbx_version_string(void)
{
    return SBX_VERSION_STRING;
}
