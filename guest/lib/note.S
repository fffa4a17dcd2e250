/* note.S - the snapbox version note (layout: sbx_abi.h). An explicit @note
 * section, so its type is SHT_NOTE whatever the linker; guest.ld gives it a
 * PT_NOTE program header, which `strip` keeps. */
#include "sbx_abi.h"
#include "sbx_version.h"

    .section .note.snapbox, "a", @note
    .balign 4
    .long SBX_NOTE_OWNER_SIZE
    .long SBX_NOTE_DESC_SIZE
    .long SBX_NOTE_TYPE_VERSION
    .asciz SBX_NOTE_OWNER
    .long SBX_VERSION_MAJOR, SBX_VERSION_MINOR, SBX_VERSION_PATCH, SBX_ABI_VERSION
1:  .asciz SBX_VERSION_STRING
    .fill SBX_ABI_VERSION_STRING_MAX - (. - 1b), 1, 0
    .balign 4
    .section .note.GNU-stack, "", @progbits
